"""infra/bootstrap.py: the user data (the settings, then the shim infra/host/user-data.sh) and the bundle.

What the host then does is the host agent's (tests/unit/agent/test_boot.py); the shim itself runs for real in the
lab (tests/lab/test_agent.py).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.bootstrap import (
    SECRET_PARAMETERS,
    USER_DATA_LIMIT,
    HostSettings,
    ansible_core_pin,
    bundle_archive,
    bundle_files,
    decode_user_data,
    encode_user_data,
    parse_env_lines,
    parse_user_data,
    render_user_data,
)
from spot_redis.events import BOOTSTRAP_FAILED, SOURCE

REPO = Path(__file__).resolve().parents[3]
SHIM = REPO / "infra" / "host" / "user-data.sh"
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|HEARTBEAT|CREDENTIAL|PRIVATE", re.IGNORECASE)

INSTANCE_ID = "i-0123456789abcdef0"
PREVIOUS_HOST = "i-0fedcba9876543210"
PRIVATE_IP = "10.20.1.23"
VOLUME_ID = "vol-0aaaabbbbccccdddd"
PREFIX = "/spot-redis/staging"
SECRETS = {
    "redis/admin-password": "adm1n-S3cret-4b9f2e7d1c",
    "redis/app-password": "app-S3cret-77e1d0c9a8b6",
    "redis/monitor-password": "mon-S3cret-19f0e2d3c4b5",
    "slack-webhook-url": "https://hooks.slack.com/services/T0000/B0000/sl4ckS3cretToken",
    "heartbeat-url": "https://hc-ping.com/5ecre7-heartbeat-uuid",
}


def settings(**overrides) -> HostSettings:
    values = {
        "stack": "staging",
        "region": "ap-northeast-1",
        "data_volume_id": VOLUME_ID,
        "data_mount": "/srv/redis",
        "bundle_bucket": "spot-redis-staging-bundles",
        "bundle_key": "bundles/ansible-0123456789abcdef.zip",
        "parameter_prefix": PREFIX,
        "cloudmap_service_id": "srv-abcdefghijklmnop",
        "ansible_core_version": "2.19.14",
        "admin_cidrs": ("203.0.113.0/24", "198.51.100.7/32"),
    }
    values.update(overrides)
    return HostSettings(**values)


# --- render_user_data, HostSettings ----------------------------------------------------------------------------


def written_settings(user_data: str, tmp_path: Path) -> dict[str, str]:
    """What bash writes into host.env, read back as the agent reads it."""
    block = user_data[: user_data.index("SETTINGS\n", user_data.index("<<'SETTINGS'")) + len("SETTINGS\n")]
    block = block.replace("/etc/spot-redis", str(tmp_path))
    subprocess.run(["bash", "-c", block], check=True)
    return parse_env_lines((tmp_path / "host.env").read_text())


def test_user_data_is_bash_that_writes_the_settings_then_runs_the_shim(tmp_path):
    user_data = render_user_data(settings())
    assert user_data.startswith("#!/bin/bash\n")
    assert user_data.count("#!/bin/bash") == 1
    assert user_data.index("SPOT_REDIS_STACK=") < user_data.index("set -euo pipefail")
    assert "exec python3 -m spot_redis.agent boot" in user_data
    path = tmp_path / "user-data"
    path.write_text(user_data)
    subprocess.run(["bash", "-n", str(path)], check=True)
    written = written_settings(user_data, tmp_path)
    assert HostSettings.from_environment(written) == settings()
    assert written["SPOT_REDIS_ADMIN_CIDRS"] == "203.0.113.0/24,198.51.100.7/32"


def test_the_shim_is_short_and_names_the_events_of_the_contract():
    user_data = render_user_data(settings())
    assert len(SHIM.read_text().splitlines()) <= 60
    assert f'"DetailType": "{BOOTSTRAP_FAILED.detail_type}"' in user_data
    assert f'"Source": "{SOURCE}"' in user_data
    assert "@" not in re.sub(r"[\w.-]+@[\w.-]+", "", user_data.split("SETTINGS\n")[-1]), "a placeholder is left"


def test_a_value_with_spaces_and_quotes_stays_one_value(tmp_path):
    tricky = 'it\'s a "bucket" $(id) `id` ;'
    user_data = render_user_data(settings(bundle_key=tricky, stack="a b"))
    written = written_settings(user_data, tmp_path)
    assert (written["SPOT_REDIS_BUNDLE_KEY"], written["SPOT_REDIS_STACK"]) == (tricky, "a b")
    assert parse_user_data(user_data)["SPOT_REDIS_BUNDLE_KEY"] == tricky


def test_user_data_stays_below_ec2s_limit():
    long = settings(bundle_key="bundles/" + "x" * 200 + ".zip", admin_cidrs=tuple(f"10.{i}.0.0/16" for i in range(20)))
    encoded = encode_user_data(render_user_data(long))
    assert len(base64.b64decode(encoded)) < USER_DATA_LIMIT // 2


def test_user_data_is_gzip_that_decodes_to_the_script_and_is_reproducible():
    text = render_user_data(settings())
    encoded = encode_user_data(text)
    assert base64.b64decode(encoded)[:2] == b"\x1f\x8b"
    assert decode_user_data(encoded) == text
    assert encode_user_data(text) == encoded, "same script, same launch template: no needless new version"
    assert decode_user_data(base64.b64encode(text.encode()).decode()) == text, "plain user data reads too"


def test_user_data_above_the_limit_is_refused():
    noise = base64.b64encode(random.Random(0).randbytes(20_000)).decode()  # noqa: S311 - incompressible, not secret
    with pytest.raises(ValueError, match="above EC2's limit"):
        encode_user_data(noise)


def test_no_secret_looking_setting_is_ever_written():
    user_data = render_user_data(settings())
    names = list(parse_user_data(user_data))
    assert names, "no settings found"
    assert not [name for name in names if SECRET_WORDS.search(name)]
    # Every setting is a HostSettings field.
    assert set(names) == set(settings().environment())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stack", ""),
        ("bundle_key", "bundles/x.zip\nrm -rf /"),
        ("data_mount", "srv/redis"),
        ("data_mount", "/srv/redis/"),
        ("parameter_prefix", "spot-redis/staging"),
        ("parameter_prefix", "/spot-redis/staging/"),
        ("ansible_core_version", "latest"),
        ("admin_cidrs", ("10.0.0.1/24",)),
        ("admin_cidrs", ("0.0.0.0/0",)),
        ("admin_cidrs", ("10.0.0.1",)),
        ("redis_allowed_cidrs", ("not-a-cidr",)),
    ],
)
def test_settings_refuse_values_the_host_cannot_use(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        settings(**{field: value})


def test_password_only_clients_are_a_flag_that_reaches_the_host(tmp_path):
    assert written_settings(render_user_data(settings()), tmp_path)["SPOT_REDIS_REDIS_LEGACY_AUTH"] == "false"
    user_data = render_user_data(settings(redis_legacy_auth=True))
    written = written_settings(user_data, tmp_path)
    assert written["SPOT_REDIS_REDIS_LEGACY_AUTH"] == "true"
    assert HostSettings.from_environment(written).redis_legacy_auth is True


def test_a_flag_must_be_true_or_false():
    with pytest.raises(ValueError, match="redis_legacy_auth must be true or false"):
        settings(redis_legacy_auth="true")
    written = settings().environment() | {"SPOT_REDIS_REDIS_LEGACY_AUTH": "yes"}
    with pytest.raises(ValueError, match=r"^SPOT_REDIS_REDIS_LEGACY_AUTH must be true or false, got 'yes'$"):
        HostSettings.from_environment(written)


def test_settings_of_an_older_user_data_keep_password_only_clients_out():
    written = settings().environment()
    del written["SPOT_REDIS_REDIS_LEGACY_AUTH"]
    assert HostSettings.from_environment(written).redis_legacy_auth is False


# --- ansible_core_pin, bundle_files ----------------------------------------------------------------------------


def test_ansible_core_pin_reads_requirements_txt():
    text = (REPO / "requirements.txt").read_text()
    expected = re.search(r"^ansible-core==(\S+)", text, re.MULTILINE)[1]
    assert ansible_core_pin(text) == expected
    # The host settings accept it.
    assert settings(ansible_core_version=expected).ansible_core_version == expected


def test_ansible_core_pin_refuses_requirements_without_a_pin():
    with pytest.raises(ValueError, match="ansible-core"):
        ansible_core_pin("ansible-core>=2.19\nansible-lint==26.10.1\n# ansible-core==2.19.14\n")
    assert ansible_core_pin("pytest==9\nansible-core == 2.18.3  # the controller\n") == "2.18.3"


def test_bundle_holds_ansible_cfg_and_the_whole_ansible_folder():
    files = bundle_files(REPO)
    assert files["ansible.cfg"] == REPO / "ansible.cfg"
    assert files["ansible/site.yml"] == REPO / "ansible" / "site.yml"
    for role in (REPO / "ansible" / "roles").iterdir():
        assert f"ansible/roles/{role.name}/tasks/main.yml" in files
    for plugin in (REPO / "ansible" / "filter_plugins").glob("*.py"):
        assert f"ansible/filter_plugins/{plugin.name}" in files
    # The host agent travels with the roles, and the event contract with it.
    assert "spot_redis/agent/__main__.py" in files
    assert "spot_redis/events.py" in files
    assert all(path == "ansible.cfg" or path.startswith(("ansible/", "spot_redis/")) for path in files)
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]
    assert list(files) == sorted(files)


def test_bundle_leaves_out_caches_and_editor_files(tmp_path):
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    plugins = tmp_path / "ansible" / "filter_plugins"
    (plugins / "__pycache__").mkdir(parents=True)
    (tmp_path / "ansible" / "site.yml").write_text("---\n")
    (plugins / "net.py").write_text("")
    (plugins / "__pycache__" / "net.cpython-311.pyc").write_bytes(b"")
    (plugins / "net.pyc").write_bytes(b"")
    (plugins / "net.py.swp").write_bytes(b"")
    (tmp_path / "ansible" / "site.retry").write_text("")
    (tmp_path / "ansible" / ".ansible").mkdir()
    (tmp_path / "ansible" / ".ansible" / "cache").write_text("")
    (tmp_path / "README.md").write_text("not in the bundle")
    assert list(bundle_files(tmp_path)) == ["ansible.cfg", "ansible/filter_plugins/net.py", "ansible/site.yml"]


def test_bundle_archive_is_reproducible_and_runs_from_anywhere(tmp_path):
    files = bundle_files(REPO)
    archive = bundle_archive(files)
    assert archive == bundle_archive(dict(reversed(list(files.items()))))
    (tmp_path / "bundle.zip").write_bytes(archive)
    with zipfile.ZipFile(tmp_path / "bundle.zip") as opened:
        assert opened.namelist() == list(files)
        opened.extractall(tmp_path / "bundle")
    # As the host runs it: ANSIBLE_CONFIG is the bundle's, the working directory is elsewhere.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "children": {"redis": {"hosts": {INSTANCE_ID: {}}}, "monitoring": {"hosts": {INSTANCE_ID: {}}}},
                    "vars": {"ansible_connection": "local", "private_address": PRIVATE_IP},
                }
            }
        )
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "bundle" / "ansible.cfg")}
    playbook = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(playbook), "-i", str(inventory), "--list-tasks", str(tmp_path / "bundle" / "ansible" / "site.yml")],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "redis : Write redis.conf" in result.stdout
    assert "alertmanager :" in result.stdout


def test_the_secret_table_is_the_aws_inventorys():
    group_vars = "".join(path.read_text() for path in (REPO / "inventories" / "aws" / "group_vars").glob("*.yml"))
    for variables in SECRET_PARAMETERS.values():
        for variable in variables:
            assert re.search(rf"^{variable}:", group_vars, re.MULTILINE), variable


def test_the_secret_table_matches_the_parameters_the_stack_creates():
    parameters = pytest.importorskip("infra.parameters")

    class Config:
        parameter_prefix = PREFIX

    created = set(parameters.parameter_names(Config()).values())
    assert created == {f"{PREFIX}/{name}" for name in SECRET_PARAMETERS}


@pytest.mark.parametrize(("apt_fails", "reported"), [(0, False), (2, False), (3, True)])
def test_the_shim_retries_apt_and_stops_when_it_never_works(apt_fails, reported):
    """The package loop under the shim's own strict mode: apt failing every time must stop the shim (its ERR trap
    reports it), not let it go on to the next step."""
    shim = SHIM.read_text()
    loop = shim[shim.index("for attempt in 1 2 3; do") : shim.index("done\n", shim.index("for attempt")) + 5]
    script = (
        "set -euo pipefail\n"
        "trap 'echo reported' ERR\n"
        f"failures={apt_fails}; attempts=0\n"
        "apt-get() { if [[ ${*: -1} == update ]]; then attempts=$((attempts + 1)); fi; ((attempts > failures)); }\n"
        "sleep() { :; }\n"
        f"{loop}"
        "echo next-step\n"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert ("reported" in result.stdout) == reported, result.stdout + result.stderr
    assert (result.returncode != 0) == reported
    assert ("next-step" in result.stdout) == (not reported)
