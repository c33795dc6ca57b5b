"""The boot (spot_redis.agent.boot) with moto, a fake instance metadata service and a fake ``run``.

moto holds the host's world: a VPC and subnet, this instance (run_instances), the data volume in its AZ, a Cloud Map
namespace and service, the stack's SSM parameters, and an EventBridge rule that copies the host's events to an SQS
queue. lab/imds.py's FakeImdsServer serves this instance's metadata on 127.0.0.1. Subprocesses (apt-get, pip, blkid,
mkfs.ext4, mount, ansible-playbook...) are a fake that records each command on one timeline with the AWS calls, and
plays a disk: no file system until mkfs, unmounted until mount; attaching the volume makes its by-id device appear,
as udev would. Every path the boot writes is under tmp_path.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from moto import mock_aws

from lab.imds import FakeImdsServer, write_host
from spot_redis.agent import dataset
from spot_redis.agent.boot import VOLUME_POLL_S, Boot, BootError, Paths
from spot_redis.agent.imds import Imds
from spot_redis.agent.settings import CLOUDMAP_INSTANCE_ID, SECRET_PARAMETERS, HostSettings
from spot_redis.events import BOOTSTRAP_FAILED, HOST_READY, Dataset
from tests.unit import lambda_support as support

REGION = support.REGION
AZ = f"{REGION}a"
PREFIX = "/spot-redis/staging"
VPC_CIDRS = ["10.0.0.0/16", "10.1.0.0/16"]
EXTRA_CIDRS = ("172.16.0.0/12", "10.1.0.0/16")  # the second is the VPC's own: admitted once
MAC = "02:00:5e:10:00:01"
UUID = "0b6d8f1e-5c1a-4f7e-9a0d-3c2b1a0f9e8d"
# Shell- and JSON-hostile on purpose (quotes, spaces, $, backslash).
SECRETS = {
    "redis/admin-password": "adm1n 'pa$$' \"w0rd\" \\x",
    "redis/app-password": "app-s3cret-8c1f3e",
    "redis/monitor-password": "mon-s3cret-77aa90",
    "slack-webhook-url": "https://hooks.slack.com/services/T0000/B0000/sl4ckT0kenXyZ",
    "heartbeat-url": "https://hc-ping.com/5b7c9d1e-heartbeat-t0ken",
}
SECRET_VARS = {var: SECRETS[name] for name, variables in SECRET_PARAMETERS.items() for var in variables}
BOOT_STEPS = [
    "packages",
    "ansible",
    "metadata",
    "volume",
    "device",
    "mount",
    "layout",
    "dataset",
    "configure",
    "register",
]
PREPARE = [
    "run apt-get update",
    "run apt-get install",
    "run dpkg-query",
    "run systemctl enable",
    "run python3 -m venv",
    "run pip",
]
NEW_VOLUME_BOOT = [
    *PREPARE,
    "ec2.describe_volumes",
    "ec2.attach_volume",
    "run blkid TYPE",
    "run mkfs.ext4",
    "run blkid UUID",
    "run systemctl daemon-reload",
    "run mountpoint",
    "run mount",
    "ssm.get_parameters",
    "run ansible-playbook",
    "servicediscovery.register_instance",
    "servicediscovery.get_operation",
    "events.put_events",
]
REDIS_FILES = {
    "dump.rdb": b"REDIS0011\xfa\tredis-ver\x057.0.15",
    "appendonlydir/appendonly.aof.1.base.rdb": b"REDIS0011\xfa\x0aaof-base\x01",
    "appendonlydir/appendonly.aof.1.incr.aof": b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    "appendonlydir/appendonly.aof.manifest": b"file appendonly.aof.1.base.rdb seq 1 type b\n",
}


def command_name(argv: list[str]) -> str:
    """ "apt-get update", "blkid TYPE", "systemctl enable", "pip", "ansible-playbook"...: what a test names it by."""
    program = Path(argv[0]).name
    if program == "apt-get":
        return f"apt-get {'update' if 'update' in argv else 'install'}"
    if program == "systemctl":
        return f"systemctl {argv[1]}"
    if program == "blkid":
        return f"blkid {argv[argv.index('-s') + 1]}"
    if argv[:3] == ["python3", "-m", "venv"]:
        return "python3 -m venv"
    return program


@dataclass
class FakeHost:
    """subprocess.run on the host: Debian's tools answer 0, the disk has no file system until mkfs.ext4 makes one and
    is mounted once mount mounts it, and ansible-playbook records what it was given (the vars file, the inventory).

    ``fs_type``: what blkid finds on the volume ("" for none); ``blkid_exit`` overrides blkid's TYPE probe.
    """

    timeline: list[str]
    fs_type: str = ""
    blkid_exit: int | None = None
    mounted: bool = False
    ansible_exit: int = 0
    calls: list[list[str]] = field(default_factory=list)
    playbooks: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, argv: list[str], *, timeout: float, check: bool = False, **kwargs: Any) -> Any:
        assert timeout and timeout > 0, f"{argv} without a timeout"
        assert check is False, f"{argv}: the boot reads exit codes itself"
        name = command_name(argv)
        self.calls.append(list(argv))
        self.timeline.append(f"run {name}")
        returncode, stdout = self._answer(name, argv, kwargs)
        if kwargs.get("capture_output"):
            return subprocess.CompletedProcess(argv, returncode, stdout, "" if returncode == 0 else f"{name} failed")
        return subprocess.CompletedProcess(argv, returncode)

    def _answer(self, name: str, argv: list[str], kwargs: dict[str, Any]) -> tuple[int, str]:
        if name == "dpkg-query":
            return 0, "install ok installed"
        if name == "python3 -m venv":
            Path(argv[-1], "bin").mkdir(parents=True)
        if name == "blkid TYPE":
            if self.blkid_exit is not None:
                return self.blkid_exit, ""
            return (0, f"{self.fs_type}\n") if self.fs_type else (2, "")
        if name == "blkid UUID":
            return (0, f"{UUID}\n") if self.fs_type else (2, "")
        if name == "mkfs.ext4":
            self.fs_type = "ext4"
        if name == "mountpoint":
            return (0 if self.mounted else 1), ""
        if name == "mount":
            self.mounted = True
        if name == "ansible-playbook":
            self.playbooks.append(_what_ansible_was_given(argv, kwargs))
            return self.ansible_exit, ""
        return 0, ""

    def names(self) -> list[str]:
        return [command_name(argv) for argv in self.calls]


def _what_ansible_was_given(argv: list[str], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Read while ansible-playbook "runs": afterwards the vars file must be gone."""
    vars_file = Path(argv[argv.index("-e") + 1].removeprefix("@"))
    inventory = Path(argv[argv.index("-i") + 1])
    return {
        "argv": argv,
        "vars_file": vars_file,
        "vars_mode": stat.S_IMODE(vars_file.stat().st_mode),
        "vars_dir_mode": stat.S_IMODE(vars_file.parent.stat().st_mode),
        "vars": json.loads(vars_file.read_text()),
        "inventory_mode": stat.S_IMODE(inventory.stat().st_mode),
        "inventory": json.loads(inventory.read_text()),
        "env": kwargs.get("env") or {},
    }


class Recording:
    """A boto3 client whose every call is put on the timeline first; ``after`` hooks run after a call succeeded."""

    def __init__(self, client: Any, service: str, timeline: list[str], after: dict[str, Callable] | None = None):
        self._client = client
        self._service = service
        self._timeline = timeline
        self._after = after or {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self._timeline.append(f"{self._service}.{name}")
            answer = attribute(**kwargs)
            if name in self._after:
                self._after[name](kwargs)
            return answer

        return call


@dataclass
class World:
    tmp_path: Path
    imds_dir: Path
    imds_url: str
    subnet_id: str
    instance_id: str
    private_ip: str
    volume_id: str
    service_id: str
    queue_url: str
    timeline: list[str] = field(default_factory=list)
    now: list[float] = field(default_factory=lambda: [0.0])
    sleeps: list[float] = field(default_factory=list)
    on_sleep: list[Callable[[int], None]] = field(default_factory=list)
    run: FakeHost = field(init=False)

    def __post_init__(self) -> None:
        self.run = FakeHost(self.timeline)
        self.serve(self.instance_id, self.private_ip)

    # --- the host -------------------------------------------------------------------------------------------------

    @property
    def data_mount(self) -> Path:
        return self.tmp_path / "srv-redis"

    @property
    def data_dir(self) -> Path:
        """Redis's directory on the volume (spot_redis.agent.layout)."""
        return self.data_mount / "redis"

    @property
    def paths(self) -> Paths:
        root = self.tmp_path / "host"
        return Paths(opt=root / "opt/spot-redis", state=root / "var/lib/spot-redis", etc=root / "etc/spot-redis",
                     secrets_parent=root / "run", dev=root / "dev", fstab=root / "etc/fstab")  # fmt: skip

    @property
    def by_id(self) -> Path:
        return self.paths.dev / "disk/by-id" / f"nvme-Amazon_Elastic_Block_Store_{self.volume_id.replace('-', '')}"

    def serve(self, instance_id: str, private_ip: str) -> None:
        """This host's metadata, as IMDS answers it to 127.0.0.1."""
        self.instance_id, self.private_ip = instance_id, private_ip
        write_host(self.imds_dir, "127.0.0.1", instance_id=instance_id, local_ipv4=private_ip, mac=MAC,
                   vpc_ipv4_cidr_blocks=VPC_CIDRS, region=REGION, availability_zone=AZ)  # fmt: skip

    def settings(self, **overrides: Any) -> HostSettings:
        values = {
            "stack": support.STACK,
            "region": REGION,
            "data_volume_id": self.volume_id,
            "data_mount": str(self.data_mount),
            "bundle_bucket": "spot-redis-staging-bundles",
            "bundle_key": "bundles/ansible-0123abcd.zip",
            "parameter_prefix": PREFIX,
            "cloudmap_service_id": self.service_id,
            "ansible_core_version": "2.19.14",
            "admin_cidrs": ("192.0.2.0/24",),
            "redis_allowed_cidrs": EXTRA_CIDRS,
        }
        return HostSettings(**{**values, **overrides})

    def clients(self) -> SimpleNamespace:
        def udev(call: dict[str, Any]) -> None:
            if call["InstanceId"] == self.instance_id:  # the device appears on this host once attached
                disk = self.paths.dev / "nvme1n1"
                disk.parent.mkdir(parents=True, exist_ok=True)
                disk.touch()
                self.by_id.parent.mkdir(parents=True, exist_ok=True)
                self.by_id.symlink_to("../../nvme1n1")

        after = {"ec2": {"attach_volume": udev}}
        return SimpleNamespace(**{
            service: Recording(support.client(service), service, self.timeline, after.get(service))
            for service in ("ec2", "autoscaling", "servicediscovery", "events", "ssm")
        })  # fmt: skip

    def boot(self, settings: HostSettings | None = None, **overrides: Any) -> Boot:
        options = {
            "settings": settings or self.settings(),
            "clients": self.clients(),
            "imds": Imds(self.imds_url, timeout_s=2),
            "paths": self.paths,
            "run": self.run,
            "sleep": self._sleep,
            "clock": lambda: self.now[0],
            **overrides,
        }
        return Boot(**options)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        assert len(self.sleeps) < 1000, "the boot waits for ever"
        self.now[0] += seconds
        for hook in self.on_sleep:
            hook(len(self.sleeps))

    def redis_data(self, directory: Path | None = None) -> None:
        """What Redis 7 leaves in its data directory."""
        for name, content in REDIS_FILES.items():
            path = (directory or self.data_dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)

    # --- what AWS holds --------------------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        sqs = support.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    def volume(self) -> dict[str, Any]:
        return support.client("ec2").describe_volumes(VolumeIds=[self.volume_id])["Volumes"][0]

    def registered(self) -> list[dict[str, Any]]:
        return support.client("servicediscovery").list_instances(ServiceId=self.service_id)["Instances"]

    def another_instance(self) -> str:
        ec2 = support.client("ec2")
        (instance,) = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet_id)[
            "Instances"
        ]
        return instance["InstanceId"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with mock.patch.dict(os.environ, support.FAKE_AWS_ENV), mock_aws():
        ec2 = support.client("ec2")
        vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDRS[0])["Vpc"]["VpcId"]
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=AZ)["Subnet"]["SubnetId"]
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet_id)["Instances"][0]
        volume_id = ec2.create_volume(AvailabilityZone=AZ, Size=20, VolumeType="gp3")["VolumeId"]
        _parameters()
        with FakeImdsServer(tmp_path / "imds") as imds:
            yield World(
                tmp_path=tmp_path,
                imds_dir=tmp_path / "imds",
                imds_url=imds.url,
                subnet_id=subnet_id,
                instance_id=instance["InstanceId"],
                private_ip=instance["PrivateIpAddress"],
                volume_id=volume_id,
                service_id=support.cloudmap_service(vpc_id),
                queue_url=support.own_events_queue(),
            )


def _parameters() -> None:
    ssm = support.client("ssm")
    for name, value in SECRETS.items():
        ssm.put_parameter(Name=f"{PREFIX}/{name}", Value=value, Type="SecureString")


def _host_ready(event: dict[str, Any], world: World, dataset_: Dataset) -> dict[str, Any]:
    assert (event["source"], event["detail-type"]) == ("spot-redis", HOST_READY.detail_type)
    detail = event["detail"]
    assert set(HOST_READY.required) <= set(detail) <= set(HOST_READY.keys)
    assert (detail["instance-id"], detail["stack"], detail["dataset"]) == (world.instance_id, "staging", dataset_)
    assert isinstance(detail["boot-seconds"], int | float) and detail["boot-seconds"] >= 0
    assert list(detail["steps"]) == [*BOOT_STEPS, "total"]
    assert all(isinstance(seconds, int | float) and seconds >= 0 for seconds in detail["steps"].values())
    return detail


def _failed(world: World, step: str) -> str:
    """The one event: "Bootstrap Failed" at ``step``; its reason."""
    events = world.events()
    assert [event["detail-type"] for event in events] == [BOOTSTRAP_FAILED.detail_type]
    detail = events[0]["detail"]
    assert set(BOOTSTRAP_FAILED.required) <= set(detail) <= set(BOOTSTRAP_FAILED.keys)
    assert (detail["instance-id"], detail["stack"], detail["step"]) == (world.instance_id, "staging", step)
    return detail["reason"]


def _no_secret_in(*texts: str) -> None:
    for text in texts:
        for name, secret in SECRETS.items():
            assert secret not in text, f"the value of {name} leaked"


# --- a first boot on a new volume ---------------------------------------------------------------------------------


def test_a_first_boot_on_a_new_volume(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spot-redis-agent")
    world.paths.fstab.parent.mkdir(parents=True)
    world.paths.fstab.write_text("# /etc/fstab\nUUID=1111-root / ext4 rw,discard,errors=remount-ro 0 1\n")

    decision = world.boot().boot()

    assert (decision.dataset, decision.marker) == (Dataset.EMPTY, None)
    # Slow work first, without the volume; then the volume; Redis's configuration; its name; the announcement.
    assert world.timeline == NEW_VOLUME_BOOT
    assert world.run.calls[world.run.names().index("mkfs.ext4")] == [
        "mkfs.ext4", "-q", "-L", "spot-redis-data", str(world.by_id)
    ]  # fmt: skip
    assert world.run.calls[world.run.names().index("mount")] == ["mount", str(world.data_mount)]
    assert (world.volume()["State"], [a["InstanceId"] for a in world.volume()["Attachments"]]) == (
        "in-use",
        [world.instance_id],
    )
    assert world.paths.fstab.read_text().splitlines() == [
        "# /etc/fstab",
        "UUID=1111-root / ext4 rw,discard,errors=remount-ro 0 1",
        f"UUID={UUID} {world.data_mount} ext4 defaults,noatime,nofail 0 2",
    ]
    assert world.registered() == [{"Id": CLOUDMAP_INSTANCE_ID, "Attributes": {"AWS_INSTANCE_IPV4": world.private_ip}}]
    (event,) = world.events()
    detail = _host_ready(event, world, Dataset.EMPTY)
    assert "saved-at" not in detail and "marker-instance-id" not in detail
    assert json.loads((world.paths.state / "dataset.json").read_text())["instance-id"] == world.instance_id
    assert (world.paths.venv / ".ansible-core-2.19.14").exists()
    assert next(call for call in world.run.calls if "pip" in call[0])[-1] == "ansible-core==2.19.14"

    (playbook,) = world.run.playbooks
    _assert_ansible_was_given_this_host(world, playbook, monitors=[world.private_ip])
    assert "monitoring" in playbook["inventory"]["all"]["children"]
    # The secrets lived in a root-only directory for the playbook's run only, and were never logged nor sent.
    assert not playbook["vars_file"].exists()
    assert list(world.paths.secrets_parent.iterdir()) == []
    _no_secret_in(caplog.text, json.dumps(event), (world.paths.etc / "inventory.json").read_text())


def _assert_ansible_was_given_this_host(world: World, playbook: dict[str, Any], monitors: list[str]) -> None:
    assert playbook["argv"][0] == str(world.paths.venv / "bin/ansible-playbook")
    assert playbook["argv"][-1] == str(world.paths.bundle / "ansible/site.yml")
    assert playbook["env"]["ANSIBLE_CONFIG"] == str(world.paths.bundle / "ansible.cfg")
    assert playbook["vars_file"].parent.parent == world.paths.secrets_parent
    assert (playbook["vars_mode"], playbook["vars_dir_mode"], playbook["inventory_mode"]) == (0o600, 0o700, 0o600)
    assert playbook["vars"] == SECRET_VARS
    inventory = playbook["inventory"]["all"]
    groups = {group: members["hosts"] for group, members in inventory["children"].items()}
    assert set(groups) == ({"redis"} if monitors != [world.private_ip] else {"redis", "monitoring"})
    assert all(hosts == {world.instance_id: {}} for hosts in groups.values())
    variables = inventory["vars"]
    assert variables["private_address"] == world.private_ip
    assert variables["redis_allowed_cidrs"] == [*VPC_CIDRS, "172.16.0.0/12"]
    assert variables["monitoring_addresses"] == variables["redis_monitoring_addresses"] == monitors
    assert variables["admin_cidrs"] == ["192.0.2.0/24"]
    assert variables["redis_data_mount"] == str(world.data_mount)
    assert variables["redis_data_dir"] == str(world.data_mount / "redis")
    monitoring_state = {key: variables.get(key) for key in ("prometheus_storage_path", "alertmanager_storage_path")}
    if monitors == [world.private_ip]:  # it monitors itself: that state outlives it, on the volume beside Redis's
        assert monitoring_state == {
            "prometheus_storage_path": str(world.data_mount / "prometheus"),
            "alertmanager_storage_path": str(world.data_mount / "alertmanager"),
        }
    else:
        assert monitoring_state == {"prometheus_storage_path": None, "alertmanager_storage_path": None}
    assert variables["spot_host_enabled"] is True
    assert variables["redis_legacy_auth"] is world.settings().redis_legacy_auth
    assert not set(SECRET_VARS) & set(variables)


def test_password_only_clients_setting_becomes_the_redis_roles_variable(world: World) -> None:
    world.boot(world.settings(redis_legacy_auth=True)).boot()

    (playbook,) = world.run.playbooks
    assert playbook["inventory"]["all"]["vars"]["redis_legacy_auth"] is True


def test_with_monitoring_elsewhere_the_host_is_in_the_redis_group_only(world: World) -> None:
    world.boot(world.settings(monitoring_addresses=("10.0.1.20", "10.0.1.21"))).boot()

    (playbook,) = world.run.playbooks
    assert list(playbook["inventory"]["all"]["children"]) == ["redis"]
    _assert_ansible_was_given_this_host(world, playbook, monitors=["10.0.1.20", "10.0.1.21"])


# --- the file system ------------------------------------------------------------------------------------------------


def test_a_volume_with_a_file_system_is_never_formatted(world: World) -> None:
    world.run.fs_type = "ext4"
    world.redis_data()

    decision = world.boot().boot()

    assert "mkfs.ext4" not in world.run.names()
    assert decision.dataset == Dataset.CRASH  # data, and no clean-stop marker
    assert f"UUID={UUID} {world.data_mount} ext4 defaults,noatime,nofail 0 2" in world.paths.fstab.read_text()
    assert [event["detail"]["dataset"] for event in world.events()] == ["crash"]


@pytest.mark.parametrize("exit_code", [1, 4])
def test_a_volume_blkid_cannot_read_is_refused(world: World, exit_code: int) -> None:
    world.run.blkid_exit = exit_code

    with pytest.raises(BootError, match=rf"^mount: blkid could not tell .* \(exit {exit_code}\): not touching it"):
        world.boot().boot()

    assert "mkfs.ext4" not in world.run.names()
    assert world.run.names()[-1] == "blkid TYPE"  # nothing after it: no mkfs, no mount
    assert "not touching it" in _failed(world, "mount")
    assert world.registered() == []


# --- a replacement for an interrupted host ----------------------------------------------------------------------------


@pytest.mark.parametrize("clean_stop", [True, False], ids=["marker", "no-marker"])
def test_a_replacement_waits_for_its_predecessor_to_let_go(world: World, clean_stop: bool) -> None:
    predecessor = world.another_instance()
    ec2 = support.client("ec2")
    ec2.attach_volume(VolumeId=world.volume_id, InstanceId=predecessor, Device="/dev/sdf")
    world.run.fs_type = "ext4"
    world.redis_data()
    marker = dataset.write_marker(world.data_dir, predecessor, keys=7) if clean_stop else None

    def predecessor_detaches(polls: int) -> None:
        if polls == 3:
            ec2.detach_volume(VolumeId=world.volume_id, InstanceId=predecessor)

    world.on_sleep.append(predecessor_detaches)

    decision = world.boot().boot()

    assert world.sleeps[:3] == [VOLUME_POLL_S] * 3
    volume_calls = [entry for entry in world.timeline if entry.startswith("ec2.")]
    assert volume_calls == ["ec2.describe_volumes"] * 4 + ["ec2.attach_volume"]
    assert [a["InstanceId"] for a in world.volume()["Attachments"]] == [world.instance_id]
    assert "mkfs.ext4" not in world.run.names()
    (event,) = world.events()
    if clean_stop:
        assert marker is not None
        assert (decision.dataset, decision.marker) == (Dataset.COMPLETE, marker)
        detail = _host_ready(event, world, Dataset.COMPLETE)
        assert (detail["saved-at"], detail["marker-instance-id"]) == (marker.saved_at, predecessor)
        # Once decided, the predecessor's marker goes: it must not outlive the data Redis writes from now on.
        assert dataset.read_marker(world.data_dir) is None
    else:
        assert decision.dataset == Dataset.CRASH
        detail = _host_ready(event, world, Dataset.CRASH)
        assert "saved-at" not in detail and "marker-instance-id" not in detail


@pytest.mark.parametrize("clean_stop", [True, False], ids=["marker", "no-marker"])
def test_a_volume_of_the_first_layout_is_moved_in_place_before_the_dataset_is_read(
    world: World, clean_stop: bool
) -> None:
    """Redis's files at the volume's root (the layout before Prometheus's and Alertmanager's state joined them)."""
    world.run.fs_type = "ext4"
    world.redis_data(world.data_mount)
    marker = dataset.write_marker(world.data_mount, "i-0predecessor00000", keys=7) if clean_stop else None
    before = dataset.data_files(world.data_mount)

    decision = world.boot().boot()

    assert sorted(path.name for path in world.data_mount.iterdir()) == ["redis"]
    assert dataset.data_files(world.data_dir) == before  # the same files, sizes and times: renamed, not copied
    assert decision.dataset == (Dataset.COMPLETE if clean_stop else Dataset.CRASH)
    assert decision.marker == marker
    assert world.run.names().index("ansible-playbook") > world.run.names().index("mount")


# --- running it again -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clean_stop", [False, True], ids=["new-volume", "clean-stopped-volume"])
def test_a_second_boot_on_the_same_instance_changes_nothing_it_did(world: World, clean_stop: bool) -> None:
    if clean_stop:
        world.run.fs_type = "ext4"
        world.redis_data()
        marker = dataset.write_marker(world.data_dir, "i-0predecessor00000")
    first = world.boot().boot()
    # Redis ran meanwhile: it cleared the marker when it started, and wrote.
    dataset.clear_marker(world.data_dir)
    world.redis_data()
    (world.data_dir / "appendonlydir/appendonly.aof.2.incr.aof").write_bytes(b"*1\r\n$4\r\nPING\r\n")
    assert dataset.decide(world.data_dir).dataset == Dataset.CRASH  # what a fresh decision would say now

    second = world.boot().boot()

    expected = Dataset.COMPLETE if clean_stop else Dataset.EMPTY
    assert first.dataset == second.dataset == expected
    assert world.timeline.count("ec2.attach_volume") == 1
    assert world.run.names().count("mkfs.ext4") == (0 if clean_stop else 1)
    assert world.run.names().count("mount") == 1
    assert world.run.names().count("pip") == 1  # ansible-core is installed once
    assert world.run.names().count("ansible-playbook") == 2
    assert world.paths.fstab.read_text().count(str(world.data_mount)) == 1
    assert {record["Attributes"]["AWS_INSTANCE_IPV4"] for record in world.registered()} == {world.private_ip}
    events = world.events()
    details = [_host_ready(event, world, expected) for event in events]
    assert len(details) == 2
    if clean_stop:
        assert [(d["saved-at"], d["marker-instance-id"]) for d in details] == [
            (marker.saved_at, "i-0predecessor00000")
        ] * 2


def test_a_host_drained_during_its_boot_is_not_registered(world: World) -> None:
    # The watcher starts with site.yml: a notice then drains the host before the boot reaches Cloud Map.
    (world.paths.state / f"drained-{world.instance_id}").parent.mkdir(parents=True, exist_ok=True)
    (world.paths.state / f"drained-{world.instance_id}").write_text("{}")

    with pytest.raises(BootError, match="register"):
        world.boot().boot()

    assert world.registered() == []
    assert [event["detail-type"] for event in world.events()] == ["Redis Host Bootstrap Failed"]


# --- giving up --------------------------------------------------------------------------------------------------------


def test_a_volume_that_never_becomes_available_ends_the_boot_and_the_host(world: World) -> None:
    autoscaling = support.client("autoscaling")
    support.client("ec2").create_launch_template(
        LaunchTemplateName="spot-redis", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t4g.small"}
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="spot-redis-staging",
        LaunchTemplate={"LaunchTemplateName": "spot-redis", "Version": "$Latest"},
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=world.subnet_id,
    )
    (member,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["spot-redis-staging"])[
        "AutoScalingGroups"
    ][0]["Instances"]
    address = support.client("ec2").describe_instances(InstanceIds=[member["InstanceId"]])["Reservations"][0][
        "Instances"
    ][0]["PrivateIpAddress"]
    holder = world.instance_id  # the predecessor, which never lets go
    support.client("ec2").attach_volume(VolumeId=world.volume_id, InstanceId=holder, Device="/dev/sdf")
    world.serve(member["InstanceId"], address)

    with pytest.raises(BootError, match=r"^volume: the data volume vol-\w+ was not available within 10 s") as raised:
        world.boot(volume_wait_s=10).boot()

    assert f"held by {holder}" in str(raised.value)
    assert "marked Unhealthy" in str(raised.value)
    assert world.sleeps == [VOLUME_POLL_S] * 5
    assert "ec2.attach_volume" not in world.timeline
    assert world.timeline[-2:] == ["autoscaling.set_instance_health", "events.put_events"]
    (health,) = autoscaling.describe_auto_scaling_instances(InstanceIds=[world.instance_id])["AutoScalingInstances"]
    assert health["HealthStatus"].upper() == "UNHEALTHY"
    reason = _failed(world, "volume")
    assert "was not available within 10 s" in reason and "marked Unhealthy" in reason
    assert [a["InstanceId"] for a in world.volume()["Attachments"]] == [holder]
    assert world.run.names() == [name.removeprefix("run ") for name in PREPARE]


# --- configure failing ------------------------------------------------------------------------------------------------


def test_a_missing_parameter_stops_the_boot_before_ansible(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spot-redis-agent")
    support.client("ssm").delete_parameter(Name=f"{PREFIX}/heartbeat-url")

    with pytest.raises(BootError, match=rf"^configure: missing or empty SSM parameters: {PREFIX}/heartbeat-url$"):
        world.boot().boot()

    assert "ansible-playbook" not in world.run.names()
    assert list(world.paths.secrets_parent.iterdir()) == []
    assert f"{PREFIX}/heartbeat-url" in _failed(world, "configure")
    assert world.registered() == []
    _no_secret_in(caplog.text)


def test_a_failing_playbook_stops_the_boot_before_cloud_map(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spot-redis-agent")
    world.run.ansible_exit = 2

    with pytest.raises(BootError, match=r"^configure: ansible-playbook site.yml failed \(exit 2\)"):
        world.boot().boot()

    assert world.run.names()[-1] == "ansible-playbook"
    assert not any(entry.startswith("servicediscovery.") for entry in world.timeline)
    assert world.registered() == []
    assert "ansible-playbook site.yml failed (exit 2)" in _failed(world, "configure")
    assert list(world.paths.secrets_parent.iterdir()) == []
    _no_secret_in(caplog.text)
