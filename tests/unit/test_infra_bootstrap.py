"""infra/bootstrap.py (user data, bundle) and the host's boot script infra/host/bootstrap.sh, run for real.

The behaviour tests run the rendered user data under bash with stub commands first on PATH (aws, curl, apt-get,
dpkg, blkid, mkfs.ext4, mount, systemctl, ansible-playbook, ...: each records its argv and answers from a state
directory), every path the script touches prefixed by SPOT_REDIS_ROOT inside a temporary directory, and, when the
tests run as root, as the user nobody: a command the stubs missed, or a path outside the sandbox, fails instead of
changing this machine.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
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
    parse_user_data,
    render_user_data,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "host" / "bootstrap.sh"
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


def exported(user_data: str, *names: str) -> list[str]:
    """The values bash itself sees for the exported settings."""
    exports = "".join(line + "\n" for line in user_data.splitlines() if line.startswith("export "))
    script = exports + "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    return out.split("\0")[:-1]


def test_user_data_is_bash_with_the_settings_then_the_script(tmp_path):
    user_data = render_user_data(settings())
    assert user_data.startswith("#!/bin/bash\n")
    assert user_data.count("#!/bin/bash") == 1
    assert "set -euo pipefail" in user_data
    assert user_data.index("export SPOT_REDIS_STACK=") < user_data.index("set -euo pipefail")
    path = tmp_path / "user-data"
    path.write_text(user_data)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert exported(user_data, "SPOT_REDIS_ADMIN_CIDRS", "SPOT_REDIS_REDIS_ALLOWED_CIDRS") == [
        "203.0.113.0/24,198.51.100.7/32",
        "",
    ]


def test_a_value_with_spaces_and_quotes_stays_one_value():
    tricky = 'it\'s a "bucket" $(id) `id` ;'
    user_data = render_user_data(settings(bundle_key=tricky, stack="a b"))
    assert exported(user_data, "SPOT_REDIS_BUNDLE_KEY", "SPOT_REDIS_STACK") == [tricky, "a b"]
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


def test_no_secret_looking_setting_is_ever_exported():
    user_data = render_user_data(settings())
    settings_block = user_data[: user_data.index("set -euo pipefail")]
    names = re.findall(r"^export (\w+)=", settings_block, re.MULTILINE)
    assert names, "no exports found"
    assert not [name for name in names if SECRET_WORDS.search(name)]
    # Every export is a HostSettings field, and no field is secret-looking.
    assert set(names) == set(settings().environment())
    # The script itself exports nothing else (AWS_* region, pager, HOME, apt's frontend).
    script_exports = re.findall(r"^\s*export ([^\n]+)", SCRIPT.read_text(), re.MULTILINE)
    for line in script_exports:
        for name in re.findall(r"(\w+)=", line):
            assert not SECRET_WORDS.search(name), line


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
    assert all(path == "ansible.cfg" or path.startswith("ansible/") for path in files)
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


def test_the_secret_table_is_the_scripts_and_the_aws_inventorys():
    script = SCRIPT.read_text()
    group_vars = "".join(path.read_text() for path in (REPO / "inventories" / "aws" / "group_vars").glob("*.yml"))
    for parameter, variables in SECRET_PARAMETERS.items():
        assert f'"{parameter}": {json.dumps(list(variables))}' in script
        assert f"$PREFIX/{parameter}" in script
        for variable in variables:
            assert re.search(rf"^{variable}:", group_vars, re.MULTILINE), variable


def test_the_secret_table_matches_the_parameters_the_stack_creates():
    parameters = pytest.importorskip("infra.parameters")

    class Config:
        parameter_prefix = PREFIX

    created = set(parameters.parameter_names(Config()).values())
    assert created == {f"{PREFIX}/{name}" for name in SECRET_PARAMETERS}


# --- the boot script, run with stubs -----------------------------------------------------------------------------

STUB = r"""
import os, sys
NAME = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
REAL_PYTHON = __REAL_PYTHON__
if NAME == "python3" and ARGS[:2] != ["-m", "venv"]:
    os.execv(REAL_PYTHON, [REAL_PYTHON, *ARGS])  # the script's own Python helpers run for real

STATE = os.environ["STUB_STATE"]
ROOT = os.environ["SPOT_REDIS_ROOT"]


def path(name):
    return os.path.join(STATE, name)


def flag(name, value=None):
    if value is None:
        return os.path.exists(path(name))
    with open(path(name), "w") as f:
        f.write(value)


def config():  # a Python literal written by the test (no json import: every stub call counts)
    with open(path("config.py")) as f:
        return eval(f.read())


def arg(option):
    return ARGS[ARGS.index(option) + 1]


with open(path("calls.log"), "a") as f:
    f.write(repr([NAME, ARGS]) + "\n")

if NAME == "python3":  # python3 -m venv DIR: a venv whose pip and ansible-playbook are stubs
    bin_dir = os.path.join(ARGS[2], "bin")
    os.makedirs(bin_dir)
    for tool in ("pip", "ansible-playbook"):
        os.symlink(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "_stub"), os.path.join(bin_dir, tool))
    sys.exit(0)

c = config()
if NAME == "aws":
    service, command = ARGS[0], ARGS[1]
    if (service, command) == ("ec2", "describe-volumes"):
        if flag("attached"):
            print("in-use\t" + c["instance_id"])
        else:
            states = c["volume_states"]
            n = int(open(path("describes")).read()) if flag("describes") else 0
            flag("describes", str(n + 1))
            print(states[min(n, len(states) - 1)].replace(" ", "\t"))
    elif (service, command) == ("ec2", "attach-volume"):
        assert arg("--instance-id") == c["instance_id"] and arg("--device") == "/dev/sdf"
        flag("attached", "yes")
        by_id = os.path.join(ROOT, "dev/disk/by-id")
        os.makedirs(by_id, exist_ok=True)
        open(os.path.join(by_id, "nvme-Amazon_Elastic_Block_Store_" + arg("--volume-id").replace("-", "")), "w").close()
        print('{"State": "attaching"}')
    elif (service, command) == ("s3", "cp"):
        import shutil

        shutil.copy(c["bundle_zip"], ARGS[-1])
    elif (service, command) == ("ssm", "get-parameters"):
        import json

        names = ARGS[ARGS.index("--names") + 1:]
        params = c["parameters"]
        print(json.dumps({
            "Parameters": [{"Name": n, "Value": params[n], "Type": "SecureString"} for n in names if n in params],
            "InvalidParameters": [n for n in names if n not in params],
        }))
    elif (service, command) == ("servicediscovery", "register-instance"):
        print("op-0001")
    elif (service, command) == ("servicediscovery", "get-operation"):
        print("SUCCESS")
    elif (service, command) == ("events", "put-events"):
        print("0")
    else:
        sys.exit(f"aws stub: no answer for {service} {command}")
elif NAME == "curl":
    url = next(a for a in ARGS if a.startswith("http"))
    meta = {
        "instance-id": c["instance_id"],
        "local-ipv4": c["private_ip"],
        "mac": "0a:1b:2c:3d:4e:5f",
        "network/interfaces/macs/0a:1b:2c:3d:4e:5f/vpc-ipv4-cidr-blocks": c["vpc_cidrs"],
    }
    if url.endswith("/latest/api/token"):
        assert "PUT" in ARGS
        sys.stdout.write("imds-token")
    elif "/latest/meta-data/" in url:
        assert "X-aws-ec2-metadata-token: imds-token" in ARGS
        sys.stdout.write(meta[url.split("/latest/meta-data/", 1)[1]])
    elif url.endswith("amazon-ssm-agent.deb"):
        open(arg("-o"), "w").write("deb")
    else:
        sys.exit(f"curl stub: no answer for {url}")
elif NAME == "dpkg-query":
    if not (c["ssm_agent_installed"] or flag("ssm_agent")):
        sys.exit(1)
    print("install ok installed", end="")
elif NAME == "dpkg":
    if ARGS == ["--print-architecture"]:
        print("arm64")
    elif ARGS[0] == "-i":
        flag("ssm_agent", "yes")
elif NAME == "blkid":
    if c.get("blkid_rc"):
        sys.exit(c["blkid_rc"])
    fs = c["filesystem"] or (open(path("mkfs")).read() if flag("mkfs") else "")
    if not fs:
        sys.exit(2)
    print({"TYPE": "ext4", "UUID": fs}[arg("-s")])
elif NAME == "mkfs.ext4":
    flag("mkfs", "0b5e55ed-0000-4000-8000-00000000f5f5")
elif NAME == "mount":
    flag("mounted", "yes")
elif NAME == "mountpoint":
    sys.exit(0 if flag("mounted") else 1)
elif NAME == "ansible-playbook":
    import shutil

    shutil.copy(arg("-e")[1:], path("vars-seen.json"))
    flag("vars-mode", oct(os.stat(arg("-e")[1:]).st_mode & 0o777))
    shutil.copy(arg("-i"), path("inventory-seen.json"))
    flag("inventory-mode", oct(os.stat(arg("-i")).st_mode & 0o777))
    flag("ansible-config", os.environ.get("ANSIBLE_CONFIG", ""))
    flag("cwd", os.getcwd())
    sys.exit(c.get("ansible_rc", 0))
"""

# What the script calls that could change the machine (and a few it must never call), all stubbed.
STUBBED = [
    *("aws", "curl", "apt-get", "dpkg", "dpkg-query", "systemctl", "udevadm", "python3"),
    *("blkid", "mkfs.ext4", "mount", "mountpoint"),
    *("mkfs", "wipefs", "sfdisk", "parted", "reboot", "shutdown", "sudo"),
]


class Host:
    """A sandbox the boot script runs in: root/ (SPOT_REDIS_ROOT), bin/ (stubs), state/ (what the stubs saw)."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "root"
        self.bin = base / "bin"
        self.state = base / "state"
        for folder in (self.root / "etc", self.bin, self.state, base / "home"):
            folder.mkdir(parents=True)
        (self.root / "etc" / "fstab").write_text("# /etc/fstab\nUUID=0000-root / ext4 defaults 0 1\n")
        real_python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        stub = self.bin / "_stub"
        stub.write_text(f"#!{real_python} -S\n" + STUB.replace("__REAL_PYTHON__", repr(real_python)))
        stub.chmod(0o755)
        for name in STUBBED:
            (self.bin / name).symlink_to("_stub")
        bundle = base / "bundle.zip"
        bundle.write_bytes(bundle_archive(bundle_files(REPO)))
        self.config = {
            "instance_id": INSTANCE_ID,
            "private_ip": PRIVATE_IP,
            "vpc_cidrs": "10.20.0.0/16\n10.99.0.0/20",
            "volume_states": ["available None"],
            "filesystem": "",
            "ssm_agent_installed": True,
            "parameters": {f"{PREFIX}/{name}": value for name, value in SECRETS.items()},
            "bundle_zip": str(bundle),
        }
        self.user_data = base / "user-data"
        self.user_data.write_text(render_user_data(settings()))
        self.data_dir = self.root / "srv" / "redis"

    def boot(self, **env) -> subprocess.CompletedProcess:
        (self.state / "config.py").write_text(repr(self.config))
        (self.state / "calls.log").write_text("")
        command = ["bash", str(self.user_data)]
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "65534:65534", str(self.base)], check=True)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *command]
        environment = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.base / "home"),
            "LANG": "C.UTF-8",
            "SPOT_REDIS_ROOT": str(self.root),
            "SPOT_REDIS_ATTACH_INTERVAL": "0.05",
            "SPOT_REDIS_DEVICE_TIMEOUT": "3",
            "SPOT_REDIS_RETRY_DELAY": "0",
            "STUB_STATE": str(self.state),
            **env,
        }
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)
        self.calls = [
            {"cmd": cmd, "argv": argv}
            for cmd, argv in map(ast.literal_eval, (self.state / "calls.log").read_text().splitlines())
        ]
        return result

    def called(self, cmd: str, *prefix: str) -> list[list[str]]:
        return [
            call["argv"] for call in self.calls if call["cmd"] == cmd and call["argv"][: len(prefix)] == list(prefix)
        ]

    @property
    def log(self) -> str:
        return (self.root / "var" / "log" / "spot-redis-bootstrap.log").read_text()

    def event(self) -> dict:
        (call,) = self.called("aws", "events", "put-events")
        (entry,) = json.loads(call[call.index("--entries") + 1])
        return {**entry, "Detail": json.loads(entry["Detail"])}

    def assert_no_secret_left(self, result: subprocess.CompletedProcess) -> None:
        texts = {"stdout": result.stdout + result.stderr, "stub argv": json.dumps(self.calls)}
        for path in self.root.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_text(errors="replace")
        for where, text in texts.items():
            for name, secret in SECRETS.items():
                assert secret not in text, f"the secret {name} is in {where}"
        assert not list((self.root / "run").glob("spot-redis-bootstrap.*")), "the secrets directory is still there"


@pytest.fixture
def host():
    base = Path(tempfile.mkdtemp(prefix="spot-redis-bootstrap-test-"))
    try:
        yield Host(base)
    finally:
        shutil.rmtree(base)


def test_first_boot_on_a_new_volume(host):
    host.config.update(filesystem="", ssm_agent_installed=False)
    result = host.boot()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done in" in host.log

    # The SSM agent, from the region's bucket, for the host's architecture.
    (download,) = [argv for argv in host.called("curl") if argv[-1].endswith(".deb")]
    assert download[-1] == (
        "https://s3.ap-northeast-1.amazonaws.com/amazon-ssm-ap-northeast-1/latest/debian_arm64/amazon-ssm-agent.deb"
    )
    assert host.called("dpkg", "-i")
    # The volume: attached once, a file system made because there was none, mounted through fstab.
    (attach,) = host.called("aws", "ec2", "attach-volume")
    assert attach[attach.index("--volume-id") + 1] == VOLUME_ID
    device = f"{host.root}/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{VOLUME_ID.replace('-', '')}"
    assert host.called("mkfs.ext4") == [["-q", "-L", "spot-redis-data", device]]
    assert host.called("mount") == [["--fstab", f"{host.root}/etc/fstab", "/srv/redis"]]
    fstab = (host.root / "etc" / "fstab").read_text().splitlines()
    assert fstab == [
        "# /etc/fstab",
        "UUID=0000-root / ext4 defaults 0 1",
        "UUID=0b5e55ed-0000-4000-8000-00000000f5f5 /srv/redis ext4 defaults,noatime,nofail 0 2",
    ]
    # Ansible: the pinned ansible-core in its venv, the bundle's config, the local inventory, the vars file.
    assert host.called("pip", "install") == [
        ["install", "--quiet", "--disable-pip-version-check", "--no-cache-dir", "ansible-core==2.19.14"]
    ]
    (playbook,) = host.called("ansible-playbook")
    bundle = f"{host.root}/opt/spot-redis/bundle"
    assert playbook[:2] == ["-i", f"{host.root}/etc/spot-redis/inventory.yml"]
    assert playbook[-1] == f"{bundle}/ansible/site.yml"
    assert (host.state / "ansible-config").read_text() == f"{bundle}/ansible.cfg"
    assert (host.root / "opt/spot-redis/bundle/ansible/roles/redis/tasks/main.yml").is_file()
    variables = json.loads((host.state / "vars-seen.json").read_text())
    assert variables == {
        "redis_admin_password": SECRETS["redis/admin-password"],
        "redis_app_password": SECRETS["redis/app-password"],
        "redis_monitor_password": SECRETS["redis/monitor-password"],
        "redis_exporter_redis_password": SECRETS["redis/monitor-password"],
        "alertmanager_slack_webhook_url": SECRETS["slack-webhook-url"],
        "alertmanager_heartbeat_url": SECRETS["heartbeat-url"],
    }
    assert (host.state / "vars-mode").read_text() == "0o600"
    assert (host.state / "inventory-mode").read_text() == "0o600"
    inventory = json.loads((host.state / "inventory-seen.json").read_text())["all"]
    assert inventory["children"] == {
        "redis": {"hosts": {INSTANCE_ID: {}}},
        "monitoring": {"hosts": {INSTANCE_ID: {}}},
    }
    assert inventory["vars"] == {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "private_address": PRIVATE_IP,
        "monitoring_addresses": [PRIVATE_IP],
        "admin_cidrs": ["203.0.113.0/24", "198.51.100.7/32"],
        "redis_allowed_cidrs": ["10.20.0.0/16", "10.99.0.0/20"],
        "redis_monitoring_addresses": [PRIVATE_IP],
        "redis_data_dir": "/srv/redis",
    }
    # Cloud Map under the fixed instance id, then the event.
    (register,) = host.called("aws", "servicediscovery", "register-instance")
    assert shlex.join(register).startswith(
        "servicediscovery register-instance --service-id srv-abcdefghijklmnop --instance-id redis-host "
        f"--attributes AWS_INSTANCE_IPV4={PRIVATE_IP}"
    )
    assert host.event() == {
        "Source": "spot-redis",
        "DetailType": "Redis Dataset Empty",
        "Detail": {"instance-id": INSTANCE_ID, "stack": "staging"},
    }
    order = [call["cmd"] + " " + " ".join(call["argv"][:2]) for call in host.calls]
    sequence = ["aws ec2 attach-volume", "mount --fstab", "ansible-playbook -i", "aws servicediscovery", "aws events"]
    positions = [next(i for i, call in enumerate(order) if call.startswith(item)) for item in sequence]
    assert positions == sorted(positions), order
    # Steps are named in the log; the dataset is decided before Ansible runs.
    assert host.log.index("dataset: restored or empty") < host.log.index("ansible-playbook site.yml")
    host.assert_no_secret_left(result)


def test_a_replacement_waits_for_the_volume_and_reports_the_restored_dataset(host):
    host.config.update(
        volume_states=[f"in-use {PREVIOUS_HOST}", f"in-use {PREVIOUS_HOST}", "available None"],
        filesystem="5eed5eed-1111-4111-8111-111111111111",
    )
    aof = host.data_dir / "appendonlydir"
    aof.mkdir(parents=True)
    for name, age in (("appendonly.aof.3.base.rdb", 3600), ("appendonly.aof.3.incr.aof", 120)):
        (aof / name).write_bytes(b"REDIS")
        os.utime(aof / name, (time.time() - age, time.time() - age))
    result = host.boot()
    assert result.returncode == 0, result.stdout + result.stderr

    assert len(host.called("aws", "ec2", "describe-volumes")) == 3
    assert host.log.count(f"still in use by {PREVIOUS_HOST}") == 2
    assert len(host.called("aws", "ec2", "attach-volume")) == 1
    assert host.called("mkfs.ext4") == []
    assert "has a ext4 file system: keeping it" in host.log
    assert host.called("dpkg", "-i") == []
    event = host.event()
    assert event["DetailType"] == "Redis Dataset Restored"
    assert event["Detail"]["instance-id"] == INSTANCE_ID
    assert event["Detail"]["stack"] == "staging"
    assert 120 <= event["Detail"]["data-age-seconds"] < 150
    assert "UUID=5eed5eed-1111-4111-8111-111111111111 /srv/redis ext4" in (host.root / "etc" / "fstab").read_text()
    host.assert_no_secret_left(result)


def test_a_dump_rdb_alone_is_a_restored_dataset(host):
    host.config.update(filesystem="5eed5eed-1111-4111-8111-111111111111")
    host.data_dir.mkdir(parents=True)
    (host.data_dir / "dump.rdb").write_bytes(b"REDIS")
    (host.data_dir / "lost+found").mkdir()
    result = host.boot()
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.event()["DetailType"] == "Redis Dataset Restored"


def test_running_it_again_changes_nothing_and_reports_the_same(host):
    first = host.boot()
    assert first.returncode == 0, first.stdout + first.stderr
    assert host.event()["DetailType"] == "Redis Dataset Empty"
    # Redis has since written its files on the volume; a second run must not call that a restored dataset.
    (host.data_dir / "appendonlydir").mkdir(parents=True)
    (host.data_dir / "appendonlydir" / "appendonly.aof.1.base.rdb").write_bytes(b"REDIS")

    second = host.boot()
    assert second.returncode == 0, second.stdout + second.stderr
    assert host.called("aws", "ec2", "attach-volume") == []
    assert host.called("mkfs.ext4") == []
    assert host.called("mount") == []
    assert host.called("pip") == []
    assert len(host.called("ansible-playbook")) == 1
    fstab = (host.root / "etc" / "fstab").read_text()
    assert fstab.count("/srv/redis") == 1
    assert host.event()["DetailType"] == "Redis Dataset Empty"
    host.assert_no_secret_left(second)


def test_a_missing_parameter_stops_the_boot_before_ansible(host):
    del host.config["parameters"][f"{PREFIX}/heartbeat-url"]
    result = host.boot()
    assert result.returncode != 0
    assert f"missing or empty SSM parameters: {PREFIX}/heartbeat-url" in host.log
    assert "FAILED in step '9/13 secrets from SSM" in host.log
    assert host.called("ansible-playbook") == []
    assert host.called("aws", "servicediscovery") == []
    assert failure_reported(host).startswith("9/13 secrets from SSM")
    host.assert_no_secret_left(result)


def failure_reported(host) -> str:
    """The step that the one event sent, 'Redis Host Bootstrap Failed', names."""
    (event,) = host.called("aws", "events", "put-events")
    (entry,) = json.loads(event[event.index("--entries") + 1])
    assert entry["Source"] == "spot-redis"
    assert entry["DetailType"] == "Redis Host Bootstrap Failed"
    detail = json.loads(entry["Detail"])
    assert (detail["instance-id"], detail["stack"]) == ("i-0123456789abcdef0", "staging")
    return detail["step"]


def test_a_failed_ansible_run_removes_the_secrets_registers_nothing_and_says_so(host):
    host.config["ansible_rc"] = 2
    result = host.boot()
    assert result.returncode != 0
    assert "FAILED in step '11/13 ansible-playbook" in host.log
    assert host.called("aws", "servicediscovery") == []
    assert failure_reported(host).startswith("11/13 ansible-playbook")
    host.assert_no_secret_left(result)


def test_a_volume_blkid_cannot_read_is_never_formatted(host):
    host.config["blkid_rc"] = 8  # ambivalent probing result: several signatures
    result = host.boot()
    assert result.returncode != 0
    assert "blkid could not tell what" in host.log
    assert host.called("mkfs.ext4") == []
    assert host.called("mount") == []


def test_a_volume_that_is_never_released_fails_loudly(host):
    host.config["volume_states"] = [f"in-use {PREVIOUS_HOST}"]
    result = host.boot(SPOT_REDIS_ATTACH_TIMEOUT="1")
    assert result.returncode != 0
    assert f"the data volume {VOLUME_ID} was not available within 1s (last: in-use {PREVIOUS_HOST})" in host.log
    assert host.called("aws", "ec2", "attach-volume") == []
    assert host.called("mkfs.ext4") == []
    assert host.called("mount") == []


def test_the_boot_script_is_executable_bash_with_strict_mode():
    mode = SCRIPT.stat().st_mode
    assert mode & stat.S_IXUSR
    text = SCRIPT.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
    assert not re.search(r"^\s*set -[a-z]*x", text, re.MULTILINE), "set -x would print the secrets"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
