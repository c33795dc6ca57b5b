"""The drain (spot_redis.agent.drain) and the Redis control (redis_ctl) with moto and a fake ``run``.

moto holds the host's world: an Auto Scaling group whose one instance is this host, the data volume attached to it, a
Cloud Map record under "redis-host", and an EventBridge rule that copies the host's events to an SQS queue (moto
cannot put events to a Lambda target). Subprocesses (redis-cli, systemctl, sync, umount, fuser) are a fake that
records each command and plays a tiny Redis and mount; the data directory is a tmp_path, so the clean-stop marker
is really written.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from spot_redis.agent import dataset
from spot_redis.agent import drain as drain_module
from spot_redis.agent.announce import Announcer
from spot_redis.agent.drain import BUDGETS, PAUSE_WRITES_MS, Drain, DrainClients
from spot_redis.agent.redis_ctl import RedisControl, RedisError, read_credentials
from spot_redis.events import HOST_DRAINED, Dataset
from tests.unit import lambda_support as support

REGION = support.REGION
GROUP = "spot-redis-staging"
PASSWORD = "s3cr3t pa$$ 'word\""  # noqa: S105 - a fake password, shell-hostile on purpose (quotes, spaces, $)
NOTICE = SimpleNamespace(action="terminate", time=datetime(2026, 11, 20, 5, 14, 40, tzinfo=UTC))
STEPS = [
    "leave_group",
    "deregister",
    "pause_writes",
    "save",
    "stop_redis",
    "mark_clean",
    "stop_monitoring",
    "unmount",
    "detach_volume",
    "announce",
]
KEYS = 42


def command_name(command: list[str]) -> str:
    """ "redis-cli SAVE", "systemctl stop", "umount"...: what a test names a command by."""
    if command[0] == "redis-cli":
        return f"redis-cli {command[command.index('--no-auth-warning') + 1]}"
    if command[0] == "systemctl":
        return f"systemctl {command[1]}"
    return command[0]


@dataclass
class FakeRun:
    """subprocess.run for the host: a Redis that stops with systemctl, a data volume that umount unmounts.

    ``outcomes`` maps a command name to what it does instead, in turn (the last repeats): a CompletedProcess-like
    tuple (returncode, stdout, stderr) or an exception to raise.
    """

    data_dir: Path
    outcomes: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    redis_running: bool = True
    mounted: bool = True

    def __call__(self, command: list[str], *, timeout: float, env: dict | None = None, **kwargs: Any) -> Any:
        assert timeout and timeout > 0, f"{command} without a timeout"
        name = command_name(command)
        self.calls.append({"name": name, "argv": list(command), "timeout": timeout, "env": env})
        planned = self.outcomes.get(name)
        if planned:
            outcome = planned.pop(0) if len(planned) > 1 else planned[0]
            if isinstance(outcome, BaseException):
                raise outcome
            return subprocess.CompletedProcess(command, *outcome)
        return subprocess.CompletedProcess(command, *self._host(name, command))

    def _host(self, name: str, command: list[str]) -> tuple[int, str, str]:
        if name.startswith("redis-cli") and not self.redis_running:
            return 1, "", "Could not connect to Redis at 127.0.0.1:6379: Connection refused"
        replies = {"redis-cli DBSIZE": f"{KEYS}\n", "redis-cli LASTSAVE": "1795000000\n", "redis-cli CONFIG": "OK\n"}
        if name == "redis-cli SAVE":
            (self.data_dir / "dump.rdb").write_bytes(b"REDIS0011 saved")
        if name == "systemctl stop":
            self.redis_running = False
        if name == "umount":
            if not self.mounted:
                return 32, "", f"umount: {command[-1]}: not mounted.\n"
            self.mounted = False
        return 0, replies.get(name, "OK\n" if name.startswith("redis-cli") else ""), ""

    def names(self) -> list[str]:
        return [call["name"] for call in self.calls]


class Breaking:
    """A boto3 client whose ``method`` raises (as AWS refusing it would); every other call goes through."""

    def __init__(self, client: Any, method: str):
        self._client = client
        self._method = method

    def __getattr__(self, name: str) -> Any:
        if name == self._method:

            def refuse(**kwargs: Any) -> Any:
                raise ClientError({"Error": {"Code": "InternalFailure", "Message": "broken"}}, name)

            return refuse
        return getattr(self._client, name)


@dataclass
class World:
    tmp_path: Path
    instance_id: str
    private_ip: str
    volume_id: str
    service_id: str
    queue_url: str
    run: FakeRun
    sleeps: list[float] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.run.data_dir

    def drain(self, clients: Any = None, events: Any = None, **overrides: Any) -> Drain:
        credentials = self.tmp_path / "redis-admin.env"
        credentials.write_text(f"# managed\nREDIS_ADMIN_USER=admin\nREDISCLI_AUTH={shlex.quote(PASSWORD)}\n")
        options = {
            "clients": clients or DrainClients(REGION),
            "announcer": Announcer(events or support.client("events"), support.STACK, self.instance_id),
            "instance_id": self.instance_id,
            "private_ip": self.private_ip,
            "volume_id": self.volume_id,
            "data_dir": self.data_dir,
            "cloudmap_service_id": self.service_id,
            "redis": RedisControl(credentials_file=credentials, run=self.run),
            "run": self.run,
            "sleep": self.sleeps.append,
            **overrides,
        }
        return Drain(**options)

    def events(self) -> list[dict[str, Any]]:
        sqs = support.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    def volume(self) -> dict[str, Any]:
        return support.client("ec2").describe_volumes(VolumeIds=[self.volume_id])["Volumes"][0]

    def registered(self) -> dict[str, str] | None:
        cloudmap = support.client("servicediscovery")
        try:
            found = cloudmap.get_instance(ServiceId=self.service_id, InstanceId="redis-host")
        except cloudmap.exceptions.InstanceNotFound:
            return None
        return found["Instance"]["Attributes"]

    def group(self) -> dict[str, Any]:
        autoscaling = support.client("autoscaling")
        return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with mock.patch.dict(os.environ, support.FAKE_AWS_ENV), mock_aws():
        support.client("sts")  # the shared session, with the fake credentials
        boto3.DEFAULT_SESSION = support._session  # DrainClients parses each service model once per run (moto resets)
        data_dir = tmp_path / "srv-redis"
        data_dir.mkdir()
        (data_dir / "dump.rdb").write_bytes(b"REDIS0011")
        instance_id, private_ip, vpc_id = _group_with_one_instance()
        yield World(
            tmp_path=tmp_path,
            instance_id=instance_id,
            private_ip=private_ip,
            volume_id=_attached_volume(instance_id),
            service_id=_registered_service(vpc_id, private_ip),
            queue_url=support.own_events_queue(),
            run=FakeRun(data_dir),
        )


def _group_with_one_instance() -> tuple[str, str, str]:
    ec2 = support.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]
    ec2.create_launch_template(
        LaunchTemplateName="spot-redis", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t4g.small"}
    )
    support.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchTemplate={"LaunchTemplateName": "spot-redis", "Version": "$Latest"},
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=subnet["SubnetId"],
    )
    autoscaling = support.client("autoscaling")
    instance_id = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0][
        "Instances"
    ][0]["InstanceId"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return instance_id, instance["PrivateIpAddress"], vpc_id


def _attached_volume(instance_id: str) -> str:
    ec2 = support.client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    return volume_id


def _registered_service(vpc_id: str, address: str) -> str:
    service_id = support.cloudmap_service(vpc_id)
    support.client("servicediscovery").register_instance(
        ServiceId=service_id, InstanceId="redis-host", Attributes={"AWS_INSTANCE_IPV4": address}
    )
    return service_id


# --- the happy path -----------------------------------------------------------------------------------------------


def test_a_drain_hands_everything_to_the_replacement(world: World) -> None:
    report = world.drain().drain(NOTICE)

    assert report.failed == {}
    assert list(report.steps) == STEPS
    _assert_left_the_group_without_shrinking_it(world)
    assert world.registered() is None
    assert world.run.names() == [
        "redis-cli CLIENT",
        "redis-cli SAVE",
        "redis-cli DBSIZE",
        "redis-cli LASTSAVE",
        "redis-cli CONFIG",
        "systemctl stop",
        "sync",
        "umount",
    ]
    assert world.run.calls[0]["argv"][-4:] == ["CLIENT", "PAUSE", str(PAUSE_WRITES_MS), "WRITE"]
    # Saved once: Redis must not write the same RDB again as it stops.
    assert world.run.calls[4]["argv"][-4:] == ["CONFIG", "SET", "save", ""]
    assert world.run.calls[5]["argv"] == ["systemctl", "stop", "redis-server"]
    marker = dataset.read_marker(world.data_dir)
    assert marker is not None and (marker.instance_id, marker.keys) == (world.instance_id, KEYS)
    assert dataset.decide(world.data_dir).dataset == Dataset.COMPLETE
    assert (report.keys, report.saved_at) == (KEYS, marker.saved_at)
    assert (world.volume()["State"], world.volume()["Attachments"]) == ("available", [])
    _assert_one_drained_event(world, failed=[], keys=KEYS, saved_at=marker.saved_at)


def _assert_left_the_group_without_shrinking_it(world: World) -> None:
    autoscaling = support.client("autoscaling")
    assert autoscaling.describe_auto_scaling_instances(InstanceIds=[world.instance_id])["AutoScalingInstances"] == []
    group = world.group()
    assert group["DesiredCapacity"] == 1
    assert world.instance_id not in [instance["InstanceId"] for instance in group["Instances"]]
    assert len(group["Instances"]) == 1  # moto, like the group, launched the replacement at once


def _assert_one_drained_event(world: World, failed: list[str], **expected: Any) -> dict[str, Any]:
    events = world.events()
    assert len(events) == 1
    event = events[0]
    assert (event["source"], event["detail-type"]) == ("spot-redis", HOST_DRAINED.detail_type)
    detail = event["detail"]
    assert set(HOST_DRAINED.required) <= set(detail) <= set(HOST_DRAINED.keys)
    assert detail["instance-id"] == world.instance_id
    assert detail["notice-time"] == "2026-11-20T05:14:40Z"
    assert detail["failed-steps"] == failed
    assert list(detail["steps"]) == [step for step in STEPS if step in detail["steps"]]
    assert "announce" not in detail["steps"]
    assert all(isinstance(seconds, int | float) and seconds >= 0 for seconds in detail["steps"].values())
    assert detail["volume-id"] == world.volume_id
    assert detail["drain-seconds"] >= 0
    for key, value in expected.items():
        assert detail.get(key.replace("_", "-")) == value, key
    return detail


# --- each step failing alone --------------------------------------------------------------------------------------


def _break(world: World, step: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The Drain's keyword arguments (or the fake run's outcomes) that make ``step`` fail and nothing else."""
    clients = SimpleNamespace(**{name: support.client(name) for name in ("ec2", "autoscaling", "servicediscovery")})
    busy = (32, "", f"umount: {world.data_dir}: target is busy.\n")
    breaks = {
        "leave_group": lambda: setattr(clients, "autoscaling", Breaking(clients.autoscaling, "detach_instances")),
        "deregister": lambda: setattr(
            clients, "servicediscovery", Breaking(clients.servicediscovery, "deregister_instance")
        ),
        "pause_writes": lambda: world.run.outcomes.update({"redis-cli CLIENT": [(1, "ERR syntax error\n", "")]}),
        "save": lambda: world.run.outcomes.update({"redis-cli SAVE": [(0, "ERR Background save in progress\n", "")]}),
        "stop_redis": lambda: world.run.outcomes.update(
            {"systemctl stop": [subprocess.TimeoutExpired(["systemctl"], 12)]}
        ),
        "mark_clean": lambda: monkeypatch.setattr(drain_module.dataset, "write_marker", _disk_full),
        # Redis stops; Prometheus does not (the second systemctl stop).
        "stop_monitoring": lambda: world.run.outcomes.update(
            {"systemctl stop": [(0, "", ""), (1, "", "Job for prometheus.service canceled.\n")]}
        ),
        "unmount": lambda: world.run.outcomes.update({"umount": [busy]}),
        "detach_volume": lambda: setattr(clients, "ec2", Breaking(clients.ec2, "detach_volume")),
        "announce": lambda: None,
    }
    breaks[step]()
    events = Breaking(support.client("events"), "put_events") if step == "announce" else None
    monitoring_units = ("prometheus.service", "prometheus-alertmanager.service") if step == "stop_monitoring" else ()
    return {"clients": clients, "events": events, "monitoring_units": monitoring_units}


def _disk_full(*args: Any, **kwargs: Any) -> Any:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("step", STEPS)
def test_a_failed_step_is_reported_and_the_others_still_run(
    world: World, step: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="spot-redis-agent")
    report = world.drain(**_break(world, step, monkeypatch)).drain(NOTICE)

    kept_mounted = step == "unmount"  # a mounted volume is never detached
    assert list(report.failed) == ([step, "detach_volume"] if kept_mounted else [step])
    assert f"drain step {step} failed" in caplog.text
    no_marker = step in ("save", "stop_redis", "mark_clean")
    skipped = {"mark_clean"} if step in ("save", "stop_redis") else {"detach_volume"} if kept_mounted else set()
    assert list(report.steps) == [s for s in STEPS if s not in skipped]
    assert (dataset.read_marker(world.data_dir) is None) == no_marker
    assert report.saved_at is None if no_marker else report.saved_at
    if step != "leave_group":
        assert (
            support.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[world.instance_id])[
                "AutoScalingInstances"
            ]
            == []
        )
    if step != "deregister":
        assert world.registered() is None
    assert world.volume()["State"] == ("in-use" if step in ("detach_volume", "unmount") else "available")
    if step == "unmount":  # busy: who holds it is asked, then one more try, never a lazy unmount
        assert world.run.names()[-3:] == ["umount", "fuser", "umount"]
        assert world.sleeps == [1.0]
    assert not any(arg in ("-l", "--lazy") for call in world.run.calls for arg in call["argv"])
    if step == "announce":
        assert world.events() == []
    else:
        _assert_one_drained_event(world, failed=list(report.failed))


def test_a_busy_volume_that_frees_itself_unmounts_on_the_second_try(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="spot-redis-agent")
    busy = (32, "", f"umount: {world.data_dir}: target is busy.\n")
    world.run.outcomes = {"umount": [busy, (0, "", "")], "fuser": [(0, "", f"{world.data_dir}: root 4242 ..c.. bash")]}

    report = world.drain().drain(NOTICE)

    assert report.failed == {}
    assert world.run.names()[-4:] == ["sync", "umount", "fuser", "umount"]
    assert world.run.calls[-2]["argv"] == ["fuser", "-vm", str(world.data_dir)]
    assert "4242 ..c.. bash" in caplog.text
    assert world.sleeps == [1.0]


def test_the_volume_wait_ends_within_its_budget(world: World) -> None:
    """A volume that never becomes available: the wait gives up on time and the event still goes out."""

    class StuckDetaching(Breaking):
        def describe_volumes(self, **kwargs: Any) -> Any:
            answer = self._client.describe_volumes(**kwargs)
            for volume in answer["Volumes"]:
                volume["State"] = "in-use"
                for attachment in volume["Attachments"]:
                    attachment["State"] = "detaching"
            return answer

    now = [0.0]
    clients = SimpleNamespace(**{name: support.client(name) for name in ("autoscaling", "servicediscovery")})
    clients.ec2 = StuckDetaching(support.client("ec2"), "none")
    drain = world.drain(clients=clients, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))

    report = drain.drain(NOTICE)

    assert list(report.failed) == ["detach_volume"]
    assert "still in-use" in report.failed["detach_volume"]
    assert 10 <= report.steps["detach_volume"] <= BUDGETS["detach_volume"]
    _assert_one_drained_event(world, failed=["detach_volume"])


# --- what must be left alone ----------------------------------------------------------------------------------------


def test_a_replacements_record_is_not_deregistered(world: World) -> None:
    cloudmap = support.client("servicediscovery")
    # Cloud Map replaces a record registered again under the same id; moto would keep both, so drop ours first.
    cloudmap.deregister_instance(ServiceId=world.service_id, InstanceId="redis-host")
    cloudmap.register_instance(
        ServiceId=world.service_id, InstanceId="redis-host", Attributes={"AWS_INSTANCE_IPV4": "10.0.1.99"}
    )

    report = world.drain().drain(NOTICE)

    assert report.failed == {}
    assert world.registered() == {"AWS_INSTANCE_IPV4": "10.0.1.99"}


def test_a_second_drain_after_a_completed_one_is_harmless(world: World) -> None:
    world.drain().drain(NOTICE)
    marker = dataset.read_marker(world.data_dir)
    world.events()  # the first drain's event, read and gone from view
    support.client("sqs").purge_queue(QueueUrl=world.queue_url)
    calls_before = len(world.run.calls)

    report = world.drain().drain(NOTICE)

    # Redis is stopped: only what needs it fails; nothing else is touched, the first marker stays.
    assert list(report.failed) == ["pause_writes", "save"]
    assert "Connection refused" in report.failed["save"]
    assert dataset.read_marker(world.data_dir) == marker
    assert "mark_clean" not in report.steps
    assert [call["name"] for call in world.run.calls[calls_before:]][-3:] == ["systemctl stop", "sync", "umount"]
    assert world.volume()["State"] == "available"
    assert world.registered() is None
    _assert_left_the_group_without_shrinking_it(world)
    _assert_one_drained_event(world, failed=["pause_writes", "save"])


def test_a_host_outside_any_group_and_unregistered_drains_quietly(world: World) -> None:
    support.client("autoscaling").detach_instances(
        InstanceIds=[world.instance_id], AutoScalingGroupName=GROUP, ShouldDecrementDesiredCapacity=True
    )
    support.client("servicediscovery").deregister_instance(ServiceId=world.service_id, InstanceId="redis-host")

    report = world.drain().drain(NOTICE)

    assert report.failed == {}
    assert world.group()["DesiredCapacity"] == 0
    assert world.volume()["State"] == "available"


# --- secrets ----------------------------------------------------------------------------------------------------------


def test_the_password_reaches_redis_cli_only_through_its_environment(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    # The save fails with an error that echoes the password: the report and the logs must still not show it.
    world.run.outcomes = {"redis-cli SAVE": [(1, "", f"ERR bad thing near {PASSWORD}")]}

    report = world.drain().drain(NOTICE)

    redis_calls = [call for call in world.run.calls if call["name"].startswith("redis-cli")]
    assert redis_calls and all(call["env"]["REDISCLI_AUTH"] == PASSWORD for call in redis_calls)
    assert all(call["argv"][call["argv"].index("--user") + 1] == "admin" for call in redis_calls)
    assert not any(PASSWORD in arg for call in world.run.calls for arg in call["argv"])
    assert all("REDISCLI_AUTH" not in (call["env"] or {}) for call in world.run.calls if call not in redis_calls)
    assert "save" in report.failed and PASSWORD not in report.failed["save"]
    assert PASSWORD not in caplog.text
    assert PASSWORD not in json.dumps(world.events())


# --- redis_ctl alone ----------------------------------------------------------------------------------------------


def _redis(tmp_path: Path, *outcomes: Any) -> tuple[RedisControl, FakeRun]:
    credentials = tmp_path / "admin.env"
    credentials.write_text(f"REDIS_ADMIN_USER='admin'\nREDISCLI_AUTH={shlex.quote(PASSWORD)}\n")
    run = FakeRun(tmp_path, outcomes={"redis-cli SAVE": list(outcomes)} if outcomes else {})
    return RedisControl(credentials_file=credentials, run=run), run


def test_credentials_are_read_as_the_shell_would(tmp_path: Path) -> None:
    credentials = tmp_path / "admin.env"
    credentials.write_text(f"# {{ ansible_managed }}\nREDIS_ADMIN_USER=admin\nREDISCLI_AUTH={shlex.quote(PASSWORD)}\n")
    assert read_credentials(credentials) == ("admin", PASSWORD)
    shell = subprocess.run(
        ["sh", "-c", f'. {credentials}; printf %s "$REDISCLI_AUTH"'], capture_output=True, text=True, check=True
    )
    assert shell.stdout == PASSWORD


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ((1, "", "Could not connect to Redis at 127.0.0.1:6379: Connection refused"), "Connection refused"),
        ((0, "ERR Background save already in progress\n", ""), "Background save"),
        ((0, "QUEUED\n", ""), "expected OK"),
        (subprocess.TimeoutExpired(["redis-cli"], 10), "no answer within 12 s"),
        (FileNotFoundError(2, "No such file or directory"), "No such file"),
    ],
)
def test_redis_errors_name_the_command_and_never_the_password(tmp_path: Path, outcome: Any, message: str) -> None:
    redis, _ = _redis(tmp_path, outcome)
    with pytest.raises(RedisError, match=message) as raised:
        redis.save()
    assert str(raised.value).startswith("redis-cli SAVE: ")
    assert PASSWORD not in str(raised.value)


def test_redis_answers_are_parsed(tmp_path: Path) -> None:
    redis, run = _redis(tmp_path)
    redis.pause_writes(30_000)
    redis.save()
    assert (redis.dbsize(), redis.lastsave()) == (KEYS, 1795000000)
    redis.stop_service(timeout_s=3)
    assert [call["timeout"] for call in run.calls] == [2.0, 12.0, 2.0, 2.0, 3]
    assert run.calls[-1]["argv"] == ["systemctl", "stop", "redis-server"]
    assert run.calls[0]["argv"][:5] == ["redis-cli", "-h", "127.0.0.1", "-p", "6379"]


def test_missing_credentials_are_a_redis_error(tmp_path: Path) -> None:
    (tmp_path / "partial.env").write_text("REDIS_ADMIN_USER=admin\n")
    with pytest.raises(RedisError, match="lacks REDISCLI_AUTH"):
        RedisControl(credentials_file=tmp_path / "partial.env", run=FakeRun(tmp_path)).dbsize()
    with pytest.raises(RedisError, match="cannot read"):
        RedisControl(credentials_file=tmp_path / "absent.env", run=FakeRun(tmp_path)).dbsize()


def test_a_host_that_monitors_itself_stops_its_monitoring_before_the_unmount(world: World) -> None:
    units = ("prometheus.service", "prometheus-alertmanager.service")
    report = world.drain(monitoring_units=units).drain(NOTICE)

    assert report.failed == {}
    stops = [call["argv"] for call in world.run.calls if call["name"] == "systemctl stop"]
    assert stops == [["systemctl", "stop", "redis-server"], ["systemctl", "stop", *units]]
    assert world.run.names().index("umount") > max(i for i, n in enumerate(world.run.names()) if n == "systemctl stop")


# --- budgets ----------------------------------------------------------------------------------------------------------


def test_the_step_budgets_fit_well_inside_the_two_minute_warning() -> None:
    assert list(BUDGETS) == STEPS
    assert sum(BUDGETS.values()) < 105  # 15 s of the 120 to spare
    assert BUDGETS["save"] + BUDGETS["stop_redis"] <= PAUSE_WRITES_MS / 1000


def test_every_command_of_a_step_fits_its_budget(world: World) -> None:
    world.run.outcomes = {"umount": [(32, "", "umount: target is busy.\n")]}  # the longest unmount: both tries
    world.drain().drain(NOTICE)
    step_of = {"redis-cli CLIENT": "pause_writes", "systemctl stop": "stop_redis"}
    by_step: dict[str, float] = {}
    for call in world.run.calls:
        step = step_of.get(call["name"], "save" if call["name"].startswith("redis-cli") else "unmount")
        by_step[step] = by_step.get(step, 0) + call["timeout"]
    assert by_step.keys() == {"pause_writes", "save", "stop_redis", "unmount"}
    assert all(seconds + (1.0 if step == "unmount" else 0) <= BUDGETS[step] for step, seconds in by_step.items())


def test_the_drains_aws_clients_are_bounded(world: World) -> None:
    config = DrainClients(REGION).ec2.meta.config
    assert (config.connect_timeout, config.read_timeout) == (drain_module.AWS_CONNECT_S, drain_module.AWS_READ_S)
    assert config.retries["total_max_attempts"] == drain_module.AWS_ATTEMPTS == 2


def test_a_failed_save_keeps_the_save_points_so_that_the_stop_saves(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = world.drain(**_break(world, "save", monkeypatch)).drain(NOTICE)
    assert "save" in report.failed
    assert "redis-cli CONFIG" not in world.run.names()
    assert "systemctl stop" in world.run.names()
