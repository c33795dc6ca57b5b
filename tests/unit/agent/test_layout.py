"""The data volume's layout (spot_redis/agent/layout.py): a volume of the first layout, Redis's files at its root,
is moved into <mount>/redis, and a crash at any point of the move is finished by running it again.

The volume is a tmp_path laid out as Redis 7 leaves its `dir`: dump.rdb, appendonlydir/ and the clean-stop marker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spot_redis.agent import dataset, layout

REDIS_FILES = {
    "dump.rdb": b"REDIS0011 a snapshot",
    "appendonlydir/appendonly.aof.1.base.rdb": b"REDIS0011 the base",
    "appendonlydir/appendonly.aof.1.incr.aof": b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
    "appendonlydir/appendonly.aof.manifest": b"file appendonly.aof.1.base.rdb seq 1 type b\n",
}
SCRIPT = Path(layout.__file__)


def first_layout_volume(mount: Path) -> dict[str, list[int]]:
    """Redis's files at the root, as the first layout left them, with a clean-stop marker; returns their fingerprint."""
    (mount / "lost+found").mkdir(parents=True)
    for name, content in REDIS_FILES.items():
        (mount / name).parent.mkdir(parents=True, exist_ok=True)
        (mount / name).write_bytes(content)
    mount.chmod(0o750)
    dataset.write_marker(mount, "i-0first000000000", keys=3)
    return dataset.data_files(mount)


def test_a_first_layout_volume_is_moved_into_its_redis_directory(tmp_path: Path) -> None:
    fingerprint = first_layout_volume(tmp_path)
    assert layout.status(tmp_path) == "first"
    assert layout.find_redis_dir(tmp_path) == tmp_path

    moved = layout.migrate(tmp_path)

    assert moved == sorted(["appendonlydir", "dump.rdb", dataset.MARKER_NAME])
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["lost+found", "redis"]
    assert dataset.data_files(tmp_path / "redis") == fingerprint  # renamed: same sizes and modification times
    assert dataset.decide(tmp_path / "redis").dataset == "complete"  # the marker still matches its files
    assert (tmp_path / "redis").stat().st_mode & 0o7777 == 0o750  # what the root was, as Redis's dir
    assert layout.status(tmp_path) == "current"
    assert layout.find_redis_dir(tmp_path) == tmp_path / "redis"


def test_a_new_volume_gets_an_empty_redis_directory(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    assert layout.status(tmp_path) == "new"

    assert layout.migrate(tmp_path) == []

    assert (tmp_path / "redis").is_dir() and not any((tmp_path / "redis").iterdir())
    assert layout.status(tmp_path) == "current"


def test_a_current_volume_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis/dump.rdb").write_bytes(b"REDIS0011 now")
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "stray.rdb").write_bytes(b"someone's copy")  # not ours to move once Redis has its directory
    before = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))

    assert layout.migrate(tmp_path) == []

    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("crash_after", range(4), ids=lambda n: f"crash-after-{n}-renames")
def test_a_move_cut_short_anywhere_is_finished_by_running_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    """Three entries and the final rename: a crash before each rename leaves a volume Redis cannot start on."""
    fingerprint = first_layout_volume(tmp_path)
    real_rename = os.rename
    renames = []

    def crashing_rename(source, destination):
        if len(renames) == crash_after:
            raise OSError("the host died here")
        renames.append(destination)
        real_rename(source, destination)

    monkeypatch.setattr(layout.os, "rename", crashing_rename)
    with pytest.raises(OSError, match="the host died here"):
        layout.migrate(tmp_path)
    monkeypatch.setattr(layout.os, "rename", real_rename)

    assert not (tmp_path / "redis").exists()  # Redis's dir is absent until the move is complete
    assert layout.status(tmp_path) == "interrupted"
    layout.migrate(tmp_path)

    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["lost+found", "redis"]
    assert dataset.data_files(tmp_path / "redis") == fingerprint
    assert dataset.decide(tmp_path / "redis").dataset == "complete"


def test_a_name_both_at_the_root_and_half_moved_is_not_guessed_about(tmp_path: Path) -> None:
    first_layout_volume(tmp_path)
    (tmp_path / layout.STAGING_DIR).mkdir()
    (tmp_path / layout.STAGING_DIR / "dump.rdb").write_bytes(b"REDIS0011 another snapshot")

    with pytest.raises(layout.LayoutError, match=r"^dump.rdb are both in .* compare them, keep one"):
        layout.migrate(tmp_path)

    assert (tmp_path / "dump.rdb").read_bytes() == REDIS_FILES["dump.rdb"]
    assert (tmp_path / layout.STAGING_DIR / "dump.rdb").read_bytes() == b"REDIS0011 another snapshot"
    assert not (tmp_path / "redis").exists()


def run_script(*args: str) -> subprocess.CompletedProcess:
    """As the redis role runs it: the file alone, with the system's python3, outside the repository."""
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), *args], cwd="/", capture_output=True, text=True, check=False
    )


def test_the_script_reports_and_migrates_with_the_standard_library_alone(tmp_path: Path) -> None:
    first_layout_volume(tmp_path)

    status = run_script("status", str(tmp_path))
    first = run_script("migrate", str(tmp_path))
    second = run_script("migrate", str(tmp_path))

    assert json.loads(status.stdout) == {"layout": "first"}
    assert json.loads(first.stdout)["changed"] is True
    assert json.loads(first.stdout)["layout"] == "current"
    assert json.loads(second.stdout) == {"changed": False, "moved": [], "layout": "current"}


def test_the_script_refuses_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    result = run_script("migrate", str(tmp_path / "missing"))
    assert result.returncode == 2 and "usage" in result.stderr


def test_a_mount_point_not_made_yet_reads_as_new(tmp_path: Path) -> None:
    """The redis role asks before it makes the directory (redis_data_dir_must_be_mountpoint: false)."""
    assert json.loads(run_script("status", str(tmp_path / "missing")).stdout) == {"layout": "new"}
