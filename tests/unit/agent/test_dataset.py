"""The dataset decision (spot_redis.agent.dataset), the mark-clean and clear-marker commands, and the host settings.

The data directory is a tmp_path laid out as Redis 7 leaves /srv/redis: dump.rdb and appendonlydir/ with a base RDB,
an incremental AOF and the manifest. Nothing here needs root, AWS or a metadata service.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spot_redis.agent import __main__ as agent_main
from spot_redis.agent import boot as boot_module
from spot_redis.agent import dataset
from spot_redis.agent.dataset import MARKER_NAME
from spot_redis.agent.settings import HostSettings, parse_env_lines
from spot_redis.events import Dataset

INSTANCE = "i-0123456789abcdef0"
INCR = "appendonlydir/appendonly.aof.1.incr.aof"
REDIS_FILES = {
    "dump.rdb": b"REDIS0011\xfa\tredis-ver\x057.0.15",
    "appendonlydir/appendonly.aof.1.base.rdb": b"REDIS0011\xfa\x0aaof-base\x01",
    INCR: b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    "appendonlydir/appendonly.aof.manifest": (
        b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    ),
}
# Distinct, whole-second modification times; the newest is the manifest's.
MTIMES = {name: 1_795_000_000 + index * 7 for index, name in enumerate(REDIS_FILES)}
NEWEST = datetime.fromtimestamp(max(MTIMES.values()), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def redis_data(data_dir: Path, empty: bool = False) -> Path:
    """A Redis 7 data directory: every file present, empty (zero bytes) or holding data."""
    for name, content in REDIS_FILES.items():
        path = data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if empty else content)
        os.utime(path, (MTIMES[name], MTIMES[name]))
    return data_dir


def settings(data_mount: Path, **overrides) -> HostSettings:
    values = {
        "stack": "staging",
        "region": "ap-northeast-1",
        "data_volume_id": "vol-0123456789abcdef0",
        "data_mount": str(data_mount),
        "bundle_bucket": "spot-redis-staging-bundles",
        "bundle_key": "bundles/ansible-0123abcd.zip",
        "parameter_prefix": "/spot-redis/staging",
        "cloudmap_service_id": "srv-0123456789abcdef",
        "ansible_core_version": "2.19.14",
        "admin_cidrs": ("192.0.2.0/24",),
    }
    return HostSettings(**{**values, **overrides})


# --- empty ----------------------------------------------------------------------------------------------------------


def test_an_empty_directory_is_empty(tmp_path: Path) -> None:
    decision = dataset.decide(tmp_path)
    assert (decision.dataset, decision.marker) == (Dataset.EMPTY, None)


def test_lost_and_found_alone_is_empty(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "lost+found" / "#12").write_bytes(b"an orphaned inode fsck found")
    assert dataset.decide(tmp_path).dataset == Dataset.EMPTY


def test_zero_size_redis_files_are_empty(tmp_path: Path) -> None:
    redis_data(tmp_path, empty=True)
    assert dataset.decide(tmp_path).dataset == Dataset.EMPTY
    # ...but one byte anywhere is data.
    (tmp_path / INCR).write_bytes(b"*")
    assert dataset.decide(tmp_path).dataset == Dataset.CRASH


# --- crash and complete -------------------------------------------------------------------------------------------


def test_data_without_a_marker_is_a_crash(tmp_path: Path) -> None:
    redis_data(tmp_path)
    decision = dataset.decide(tmp_path)
    assert (decision.dataset, decision.marker) == (Dataset.CRASH, None)
    assert "without a clean-stop marker" in decision.reason


def test_a_marker_written_after_the_last_save_makes_it_complete(tmp_path: Path) -> None:
    redis_data(tmp_path)
    (tmp_path / "lost+found").mkdir()

    written = dataset.write_marker(tmp_path, INSTANCE, keys=42)
    decision = dataset.decide(tmp_path)

    assert decision.dataset == Dataset.COMPLETE
    assert decision.marker == written
    assert (written.instance_id, written.saved_at, written.keys) == (INSTANCE, NEWEST, 42)
    assert written.saved_at.endswith("Z")
    assert sorted(written.files) == sorted(REDIS_FILES)
    assert written.files["dump.rdb"] == [len(REDIS_FILES["dump.rdb"]), MTIMES["dump.rdb"] * 10**9]
    assert INSTANCE in decision.reason and NEWEST in decision.reason


def test_a_marker_on_zero_size_files_only_is_still_empty(tmp_path: Path) -> None:
    redis_data(tmp_path, empty=True)
    dataset.write_marker(tmp_path, INSTANCE)
    assert dataset.decide(tmp_path).dataset == Dataset.EMPTY


def test_an_append_after_the_marker_is_a_crash_naming_the_file(tmp_path: Path) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, INSTANCE)
    with (tmp_path / INCR).open("ab") as aof:
        aof.write(b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n")

    decision = dataset.decide(tmp_path)

    assert (decision.dataset, decision.marker) == (Dataset.CRASH, None)
    assert decision.reason.endswith(f"marker: {INCR}")


def test_a_rewrite_of_the_same_size_after_the_marker_is_a_crash(tmp_path: Path) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, INSTANCE)
    os.utime(tmp_path / "dump.rdb", (MTIMES["dump.rdb"] + 60, MTIMES["dump.rdb"] + 60))

    decision = dataset.decide(tmp_path)

    assert decision.dataset == Dataset.CRASH
    assert decision.reason.endswith("marker: dump.rdb")


def test_a_new_file_after_the_marker_is_a_crash_naming_it(tmp_path: Path) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, INSTANCE)
    (tmp_path / "appendonlydir/appendonly.aof.2.incr.aof").touch()

    decision = dataset.decide(tmp_path)

    assert decision.dataset == Dataset.CRASH
    assert decision.reason.endswith("marker: appendonlydir/appendonly.aof.2.incr.aof")


def test_a_file_gone_after_the_marker_is_a_crash_naming_it(tmp_path: Path) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, INSTANCE)
    (tmp_path / "dump.rdb").unlink()

    decision = dataset.decide(tmp_path)

    assert decision.dataset == Dataset.CRASH
    assert decision.reason.endswith("marker: dump.rdb")


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: text[: len(text) // 2],  # truncated by a crash mid-write
        lambda text: "",
        lambda text: "\x00" * 64,
        lambda text: "[]",
        lambda text: "null",
        lambda text: json.dumps({**json.loads(text), "files": ["dump.rdb"]}),
        lambda text: json.dumps({key: value for key, value in json.loads(text).items() if key != "saved-at"}),
        lambda text: json.dumps({**json.loads(text), "files": {"dump.rdb": [1]}}),
    ],
    ids=["truncated", "empty", "zeros", "list", "null", "files-list", "no-saved-at", "short-fingerprint"],
)
def test_a_corrupt_marker_is_a_crash(tmp_path: Path, corrupt) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, INSTANCE)
    marker = tmp_path / MARKER_NAME
    marker.write_text(corrupt(marker.read_text()))

    assert dataset.read_marker(tmp_path) is None
    decision = dataset.decide(tmp_path)
    assert (decision.dataset, decision.marker) == (Dataset.CRASH, None)


def test_a_marker_of_other_files_is_a_crash(tmp_path: Path) -> None:
    """A marker copied from another volume (or left by an older layout) does not vouch for these files."""
    redis_data(tmp_path)
    marker = dataset.write_marker(tmp_path, INSTANCE)
    forged = replace(marker, files={"dump.rdb": marker.files["dump.rdb"]})
    (tmp_path / MARKER_NAME).write_text(forged.to_json())
    assert dataset.decide(tmp_path).dataset == Dataset.CRASH


# --- the marker file itself ----------------------------------------------------------------------------------------


def test_the_marker_is_written_atomically_and_root_readable_only(tmp_path: Path) -> None:
    redis_data(tmp_path)
    old_umask = os.umask(0o022)
    try:
        dataset.write_marker(tmp_path, INSTANCE)
    finally:
        os.umask(old_umask)

    marker = tmp_path / MARKER_NAME
    assert stat.S_IMODE(marker.stat().st_mode) == 0o640
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == [MARKER_NAME]
    assert not list(tmp_path.rglob("*.tmp"))
    raw = json.loads(marker.read_text())
    assert (raw["instance-id"], raw["saved-at"]) == (INSTANCE, NEWEST)


def test_a_second_marker_replaces_the_first_and_does_not_fingerprint_itself(tmp_path: Path) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, "i-0aaaaaaaaaaaaaaaa")
    second = dataset.write_marker(tmp_path, INSTANCE)
    assert MARKER_NAME not in second.files and sorted(second.files) == sorted(REDIS_FILES)
    assert dataset.decide(tmp_path).marker == second


def test_clear_marker_says_whether_there_was_one(tmp_path: Path) -> None:
    redis_data(tmp_path)
    dataset.write_marker(tmp_path, INSTANCE)
    assert dataset.clear_marker(tmp_path) is True
    assert not (tmp_path / MARKER_NAME).exists()
    assert dataset.clear_marker(tmp_path) is False
    assert dataset.decide(tmp_path).dataset == Dataset.CRASH


# --- python3 -m spot_redis.agent mark-clean | clear-marker ------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A settings file whose data_mount is a tmp_path Redis data directory (a mount point, as far as the agent
    knows), and the boot's record of this instance in a tmp_path state directory."""
    data_dir = redis_data(tmp_path / "srv-redis")
    settings_file = tmp_path / "host.env"
    settings_file.write_text(settings(data_dir).env_file())
    state = tmp_path / "state"
    state.mkdir()
    (state / "dataset.json").write_text(json.dumps({"instance-id": INSTANCE, "dataset": "empty"}))
    monkeypatch.setattr(boot_module, "STATE_DIR", state)
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == data_dir)
    monkeypatch.delenv("SERVICE_RESULT", raising=False)
    return {"data": data_dir, "settings": settings_file}


def agent(host: dict[str, Path], command: str) -> int:
    return agent_main.main([command, "--settings", str(host["settings"])])


def test_mark_clean_after_a_clean_stop_writes_the_marker(host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_RESULT", "success")
    assert agent(host, "mark-clean") == 0
    marker = dataset.read_marker(host["data"])
    assert marker is not None and (marker.instance_id, marker.saved_at) == (INSTANCE, NEWEST)
    assert dataset.decide(host["data"]).dataset == Dataset.COMPLETE


@pytest.mark.parametrize("result", [None, "signal", "timeout", "exit-code", "core-dump", ""])
def test_mark_clean_after_anything_but_success_writes_nothing(host, monkeypatch, result) -> None:
    if result is not None:
        monkeypatch.setenv("SERVICE_RESULT", result)
    assert agent(host, "mark-clean") == 0
    assert not (host["data"] / MARKER_NAME).exists()


def test_mark_clean_on_an_unmounted_data_dir_writes_nothing(host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_RESULT", "success")
    monkeypatch.setattr(os.path, "ismount", lambda path: False)
    assert agent(host, "mark-clean") == 0
    assert not (host["data"] / MARKER_NAME).exists()


def test_mark_clean_without_a_boot_record_names_an_unknown_instance(host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_RESULT", "success")
    monkeypatch.setattr(boot_module, "STATE_DIR", host["data"].parent / "absent")
    assert agent(host, "mark-clean") == 0
    marker = dataset.read_marker(host["data"])
    assert marker is not None and marker.instance_id == "unknown"


def test_clear_marker_removes_it_and_is_harmless_twice(host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_RESULT", "success")
    agent(host, "mark-clean")
    assert (host["data"] / MARKER_NAME).exists()
    assert agent(host, "clear-marker") == 0
    assert not (host["data"] / MARKER_NAME).exists()
    assert agent(host, "clear-marker") == 0
    assert dataset.decide(host["data"]).dataset == Dataset.CRASH


def test_a_missing_settings_file_is_exit_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="spot-redis-agent")
    assert agent_main.main(["clear-marker", "--settings", str(tmp_path / "absent.env")]) == 2
    assert "cannot read the host's settings" in caplog.text


# --- HostSettings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"redis_allowed_cidrs": ("172.16.0.0/12", "10.8.0.0/16"), "monitoring_addresses": ("10.0.1.20", "10.0.1.21")},
        {"admin_cidrs": (), "redis_allowed_cidrs": ("172.16.0.0/12",)},
        {"monitoring_addresses": ("fd00::20",), "stack": "it's $HOME `x`"},
    ],
    ids=["defaults", "lists", "no-admin", "shell-hostile"],
)
def test_settings_round_trip_through_the_env_file(tmp_path: Path, overrides) -> None:
    original = settings(tmp_path / "srv-redis", **overrides)
    text = original.env_file()
    assert all(line.startswith("SPOT_REDIS_") for line in text.splitlines())
    assert HostSettings.from_environment(parse_env_lines(text)) == original
    exported = "# written by the user data\n" + "".join(f"export {line}\n" for line in text.splitlines())
    assert HostSettings.from_environment(parse_env_lines(exported)) == original
    (tmp_path / "host.env").write_text(text)
    assert HostSettings.read(tmp_path / "host.env") == original


def test_empty_lists_are_written_and_read_as_empty_tuples(tmp_path: Path) -> None:
    original = settings(tmp_path, admin_cidrs=())
    variables = parse_env_lines(original.env_file())
    assert variables["SPOT_REDIS_MONITORING_ADDRESSES"] == ""
    assert variables["SPOT_REDIS_REDIS_ALLOWED_CIDRS"] == ""
    read = HostSettings.from_environment(variables)
    assert (read.admin_cidrs, read.redis_allowed_cidrs, read.monitoring_addresses) == ((), (), ())


def test_optional_lists_may_be_absent(tmp_path: Path) -> None:
    variables = parse_env_lines(settings(tmp_path).env_file())
    del variables["SPOT_REDIS_MONITORING_ADDRESSES"], variables["SPOT_REDIS_REDIS_ALLOWED_CIDRS"]
    assert HostSettings.from_environment(variables) == settings(tmp_path)


@pytest.mark.parametrize("key", ["SPOT_REDIS_DATA_VOLUME_ID", "SPOT_REDIS_ADMIN_CIDRS", "SPOT_REDIS_STACK"])
def test_a_missing_required_key_is_named(tmp_path: Path, key: str) -> None:
    variables = parse_env_lines(settings(tmp_path).env_file())
    del variables[key]
    with pytest.raises(ValueError, match=f"the settings lack {key}$"):
        HostSettings.from_environment(variables)


def test_an_empty_required_value_is_named(tmp_path: Path) -> None:
    variables = parse_env_lines(settings(tmp_path).env_file())
    variables["SPOT_REDIS_DATA_VOLUME_ID"] = ""
    with pytest.raises(ValueError, match="data_volume_id must not be empty"):
        HostSettings.from_environment(variables)


def test_reading_a_missing_settings_file_is_a_clear_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read the host's settings .*absent\.env: No such file or directory"):
        HostSettings.read(tmp_path / "absent.env")
