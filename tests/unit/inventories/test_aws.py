"""inventories/aws: the dynamic inventory script under moto, and the directory as Ansible reads it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra.bootstrap import HostSettings, render_user_data

REPO = Path(__file__).resolve().parents[3]
INVENTORY_DIR = REPO / "inventories" / "aws"
SCRIPT = INVENTORY_DIR / "spot_redis.py"
REGION = "ap-northeast-1"
SECRET = "n0t-in-the-inventory-S3cret"  # noqa: S105 - a stand-in the output must not show
IMAGE = "ami-12c6146b"  # one of moto's AMIs (listing them takes seconds)
PROXY = (
    '-o ProxyCommand="aws ssm start-session --target %h --document-name AWS-StartSSHSession '
    f'--parameters portNumber=%p --region {REGION}" -o StrictHostKeyChecking=accept-new'
)


def load_script():
    spec = importlib.util.spec_from_file_location("spot_redis_aws_inventory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


inventory_script = load_script()


def user_data(stack: str, *, legacy_auth: bool = False) -> str:
    return render_user_data(
        HostSettings(
            stack=stack,
            region=REGION,
            data_volume_id="vol-0aaaabbbbccccdddd",
            data_mount="/srv/redis",
            bundle_bucket="spot-redis-bundles",
            bundle_key="bundles/ansible-0123456789abcdef.zip",
            parameter_prefix=f"/spot-redis/{stack}",
            cloudmap_service_id="srv-abcdefghijklmnop",
            ansible_core_version="2.19.14",
            admin_cidrs=("203.0.113.0/24",),
            redis_allowed_cidrs=("192.168.10.0/24",),
            redis_legacy_auth=legacy_auth,
        )
    )


def launch(ec2, stack: str | None, *, running: bool = True, legacy_auth: bool = False) -> str:
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "spot-redis:stack", "Value": stack}]}] if stack else []
    (instance,) = ec2.run_instances(
        ImageId=IMAGE,
        MinCount=1,
        MaxCount=1,
        InstanceType="t4g.small",
        UserData=user_data(stack or "none", legacy_auth=legacy_auth),
        TagSpecifications=tags,
    )["Instances"]
    if not running:
        ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    return instance["InstanceId"]


@pytest.fixture(scope="module")
def aws():
    """moto, with fake credentials, and the stack's hosts: created once for the module (the tests only read)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_REGION", REGION)
        with mock_aws():
            ec2 = boto3.client("ec2", region_name=REGION)
            boto3.client("ssm", region_name=REGION).put_parameter(
                Name="/spot-redis/staging/redis/admin-password", Value=SECRET, Type="SecureString"
            )
            hosts = {
                "ours": launch(ec2, "staging"),
                "ours_stopped": launch(ec2, "staging", running=False),
                "other_stack": launch(ec2, "production"),
                "untagged": launch(ec2, None),
            }
            yield ec2, hosts


@pytest.fixture
def ec2(aws):
    return aws[0]


@pytest.fixture
def hosts(aws):
    """Ours running, ours stopped, another stack's running, an untagged one running."""
    return aws[1]


def run(capsys, *args, environ=None) -> tuple[int, dict | str]:
    environ = {"SPOT_REDIS_STACK": "staging", "AWS_REGION": REGION} if environ is None else environ
    code = inventory_script.main(list(args), environ=environ)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_lists_only_the_stacks_running_hosts_in_both_groups(hosts, capsys):
    code, inventory = run(capsys, "--list")
    assert code == 0
    assert inventory["redis"] == {"hosts": [hosts["ours"]]}
    assert inventory["monitoring"] == {"hosts": [hosts["ours"]]}
    assert list(inventory["_meta"]["hostvars"]) == [hosts["ours"]]
    assert set(inventory["all"]["children"]) == {"ungrouped", "redis", "monitoring"}


def test_hostvars_reach_the_host_through_session_manager(ec2, hosts, capsys):
    _, inventory = run(capsys, "--list")
    (instance,) = ec2.describe_instances(InstanceIds=[hosts["ours"]])["Reservations"][0]["Instances"]
    vpc = ec2.describe_vpcs(VpcIds=[instance["VpcId"]])["Vpcs"][0]
    assert inventory["_meta"]["hostvars"][hosts["ours"]] == {
        "ansible_host": hosts["ours"],
        "ansible_user": "admin",
        "ansible_become": True,
        "ansible_ssh_common_args": PROXY,
        "private_address": instance["PrivateIpAddress"],
        "vpc_cidrs": [vpc["CidrBlock"]],
        # From the host's own user data: what it booted with.
        "admin_cidrs": ["203.0.113.0/24"],
        "spot_redis_extra_allowed_cidrs": ["192.168.10.0/24"],
        "redis_data_mount": "/srv/redis",
        "redis_data_dir": "/srv/redis/redis",
        "prometheus_storage_path": "/srv/redis/prometheus",
        "alertmanager_storage_path": "/srv/redis/alertmanager",
        "redis_legacy_auth": False,
        "spot_redis_stack": "staging",
        "spot_redis_region": REGION,
        "spot_redis_parameter_prefix": "/spot-redis/staging",
        "ec2_instance_type": "t4g.small",
        "ec2_availability_zone": instance["Placement"]["AvailabilityZone"],
    }


def test_a_host_booted_for_password_only_clients_is_pushed_the_same(ec2, hosts, capsys):
    instance_id = launch(ec2, "legacy", legacy_auth=True)
    code, inventory = run(capsys, "--list", environ={"SPOT_REDIS_STACK": "legacy", "AWS_REGION": REGION})
    assert code == 0
    assert inventory["_meta"]["hostvars"][instance_id]["redis_legacy_auth"] is True


def test_nothing_secret_in_the_output(hosts, capsys):
    inventory_script.main(["--list"], environ={"SPOT_REDIS_STACK": "staging", "AWS_REGION": REGION})
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "password" not in out.lower()


def test_host_gives_one_hosts_variables(hosts, capsys):
    _, inventory = run(capsys, "--list")
    code, host = run(capsys, "--host", hosts["ours"])
    assert code == 0
    assert host == inventory["_meta"]["hostvars"][hosts["ours"]]
    assert run(capsys, "--host", hosts["other_stack"]) == (0, {})


def test_region_from_aws_default_region(hosts, capsys):
    code, inventory = run(capsys, "--list", environ={"SPOT_REDIS_STACK": "staging", "AWS_DEFAULT_REGION": REGION})
    assert code == 0
    assert inventory["redis"]["hosts"] == [hosts["ours"]]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AWS_REGION": REGION}, "SPOT_REDIS_STACK is not set"),
        ({"SPOT_REDIS_STACK": " ", "AWS_REGION": REGION}, "SPOT_REDIS_STACK is not set"),
        ({"SPOT_REDIS_STACK": "staging"}, "AWS_REGION (or AWS_DEFAULT_REGION) is not set"),
    ],
)
def test_missing_settings_are_named(capsys, environ, message):
    code, err = run(capsys, "--list", environ=environ)
    assert code == 2
    assert message in err


def test_the_script_runs_as_an_executable_and_fails_clearly_without_a_stack():
    assert os.access(SCRIPT, os.X_OK)
    env = {key: value for key, value in os.environ.items() if key != "SPOT_REDIS_STACK"}
    result = subprocess.run([str(SCRIPT), "--list"], env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "SPOT_REDIS_STACK is not set: export SPOT_REDIS_STACK=" in result.stderr
    assert result.stdout == ""


# --- the directory, as ansible-inventory and ansible read it ---------------------------------------------------

# Started in the inventory script's own Python (ansible runs it as a program): moto, seeded with the test's hosts.
SITECUSTOMIZE = textwrap.dedent(
    """
    import json, os, sys
    if os.path.basename(sys.argv[0]) == "spot_redis.py":
        import boto3
        from moto import mock_aws
        mock_aws().start()
        ec2 = boto3.client("ec2", region_name=os.environ["AWS_REGION"])
        for host in json.loads(os.environ["SEED_HOSTS"]):
            tags = [{"Key": "spot-redis:stack", "Value": host["stack"]}]
            (instance,) = ec2.run_instances(
                ImageId=os.environ["SEED_IMAGE"], MinCount=1, MaxCount=1, UserData=host["user_data"],
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )["Instances"]
            if not host["running"]:
                ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    """
)

FAKE_AWS = textwrap.dedent(
    """\
    #!/bin/bash
    # Stands in for the AWS CLI in the pipe lookups: records its arguments, answers with the parameter's name.
    printf '%s\\n' "$*" >>"$FAKE_AWS_LOG"
    for arg in "$@"; do name="$arg"; done
    printf 'value-of:%s\\n' "$name"
    """
)


@pytest.fixture(scope="module")
def ansible_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("aws-inventory")
    (base / "site").mkdir()
    (base / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (base / "bin").mkdir()
    (base / "bin" / "aws").write_text(FAKE_AWS)
    (base / "bin" / "aws").chmod(0o755)
    seed = [
        {"stack": "staging", "running": True, "user_data": user_data("staging")},
        {"stack": "staging", "running": False, "user_data": user_data("staging")},
        {"stack": "production", "running": True, "user_data": user_data("production")},
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        PATH=f"{base / 'bin'}:{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(base / "site"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        SPOT_REDIS_STACK="staging",
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fake credentials
        SEED_HOSTS=json.dumps(seed),
        SEED_IMAGE=IMAGE,
        FAKE_AWS_LOG=str(base / "aws.log"),
    )
    return env, base / "aws.log"


def ansible(env, *args, cwd=REPO) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def listed(ansible_env) -> dict:
    """`ansible-inventory -i inventories/aws --list`, the script under moto (once: moto takes seconds to start)."""
    env, _ = ansible_env
    return json.loads(ansible(env, "ansible-inventory", "-i", "inventories/aws", "--list"))


def test_ansible_inventory_reads_the_directory_without_calling_aws(ansible_env, listed):
    _, aws_log = ansible_env
    (host,) = listed["redis"]["hosts"]
    assert listed["monitoring"]["hosts"] == [host]
    variables = listed["_meta"]["hostvars"][host]
    assert variables["ansible_ssh_common_args"] == PROXY
    assert variables["ansible_user"] == "admin"
    # group_vars are there, untemplated: the SSM lookups run only when a play uses them.
    assert "lookup('ansible.builtin.pipe'" in variables["redis_admin_password"]
    assert "monitoring_addresses" in variables
    assert not aws_log.exists()


def test_group_vars_read_the_secrets_from_ssm_and_mirror_the_boot(ansible_env, listed, tmp_path):
    env, aws_log = ansible_env
    # The script's host as ansible-inventory listed it, with the real group_vars beside it (no second moto start).
    (host,) = listed["redis"]["hosts"]
    group_var_names = set()
    for path in (INVENTORY_DIR / "group_vars").glob("*.yml"):
        group_var_names |= set(yaml_keys(path.read_text()))
    own = {key: value for key, value in listed["_meta"]["hostvars"][host].items() if key not in group_var_names}
    (tmp_path / "hosts.json").write_text(
        json.dumps({"all": {"children": {"redis": {"hosts": {host: own}}, "monitoring": {"hosts": {host: own}}}}})
    )
    (tmp_path / "group_vars").symlink_to(INVENTORY_DIR / "group_vars")
    wanted = [
        "redis_admin_password",
        "redis_app_password",
        "redis_monitor_password",
        "redis_exporter_redis_password",
        "alertmanager_slack_webhook_url",
        "alertmanager_heartbeat_url",
        "redis_allowed_cidrs",
        "redis_monitoring_addresses",
        "monitoring_addresses",
        "admin_cidrs",
        "private_address",
        "redis_data_mount",
        "redis_data_dir",
        "prometheus_storage_path",
        "alertmanager_storage_path",
        "redis_legacy_auth",
        "spot_host_enabled",
    ]
    message = "{{ {" + ", ".join(f"'{name}': {name}" for name in wanted) + "} | to_json }}"
    env = {**env, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    out = ansible(
        env, "ansible", "-i", str(tmp_path / "hosts.json"), "all", "-m", "ansible.builtin.debug", "-a", f"msg={message}"
    )
    values = json.loads(json.loads(out.split(" => ", 1)[1])["msg"])
    prefix = "value-of:/spot-redis/staging"
    assert values["redis_admin_password"] == f"{prefix}/redis/admin-password"
    assert values["redis_app_password"] == f"{prefix}/redis/app-password"
    assert values["redis_monitor_password"] == values["redis_exporter_redis_password"]
    assert values["redis_monitor_password"] == f"{prefix}/redis/monitor-password"
    assert values["alertmanager_slack_webhook_url"] == f"{prefix}/slack-webhook-url"
    assert values["alertmanager_heartbeat_url"] == f"{prefix}/heartbeat-url"
    # As the host agent's boot writes them (spot_redis/agent/boot.py): the VPC, then the extra networks.
    assert values["redis_allowed_cidrs"] == ["172.31.0.0/16", "192.168.10.0/24"]
    assert values["monitoring_addresses"] == [values["private_address"]]
    assert values["redis_monitoring_addresses"] == [values["private_address"]]
    assert values["admin_cidrs"] == ["203.0.113.0/24"]
    # The data volume's layout, as the host's boot gives it to the host that monitors itself.
    assert values["redis_data_mount"] == "/srv/redis"
    assert values["redis_data_dir"] == "/srv/redis/redis"
    assert values["prometheus_storage_path"] == "/srv/redis/prometheus"
    assert values["alertmanager_storage_path"] == "/srv/redis/alertmanager"
    assert values["redis_legacy_auth"] is False, "as the host booted with"
    assert values["spot_host_enabled"] is True, "a push keeps the watcher the boot installed"
    calls = aws_log.read_text().splitlines()
    assert calls
    assert all(
        call.startswith(
            f"ssm get-parameter --with-decryption --query Parameter.Value --output text --region {REGION} --name "
        )
        for call in calls
    )


def yaml_keys(text: str) -> list[str]:
    return [line.split(":", 1)[0] for line in text.splitlines() if line and line[0].isalpha() and ":" in line]
