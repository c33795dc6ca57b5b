"""spot-redis status, start, stop and connect against moto; every bad input is one line and exit 1."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from spot_redis.cli import connect, main
from spot_redis.cli.context import Stack
from spot_redis.cli.schedule import Recurrence, up_hours
from tests.unit import lambda_support as support

NOW = datetime.datetime(2026, 12, 7, 1, 0, tzinfo=datetime.UTC)  # Mon 10:00 in Tokyo


class FakeTime:
    """An injected clock: sleep advances it; nothing waits for real."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in support.FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.Session(region_name=support.REGION)
        ec2 = session.client("ec2")
        volume = ec2.create_volume(AvailabilityZone=f"{support.REGION}a", Size=20)["VolumeId"]
        template = ec2.create_launch_template(LaunchTemplateName="t", LaunchTemplateData={"ImageId": "ami-12c6146b"})
        session.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=support.GROUP,
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            AvailabilityZones=[f"{support.REGION}a"],
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
        )
        queue = session.client("sqs").create_queue(QueueName="failed-events")["QueueUrl"]
        outputs = {
            "asgName": support.GROUP,
            "dataVolumeId": volume,
            "failedEventsQueueUrl": queue,
            "clusterName": "spot-redis-staging",
            "parameterNames": {"redis-app-password": "/spot-redis/staging/redis/app-password"},
        }
        stack = Stack(name=support.STACK, outputs=outputs, config={}, region=support.REGION, session=session)
        yield {"session": session, "stack": stack, "volume": volume, "queue": queue}


def run(world: dict[str, Any], *argv: str, clock: FakeTime | None = None, **tools: Any) -> int:
    clock = clock or FakeTime()
    kit = main.Tools(sleep=clock.sleep, monotonic=clock.monotonic, now=lambda: NOW, **tools)
    return main.main(list(argv), tools=kit, loader=lambda args: world["stack"])


def start_host(world: dict[str, Any]) -> str:
    world["session"].client("autoscaling").set_desired_capacity(AutoScalingGroupName=support.GROUP, DesiredCapacity=1)
    (group,) = world["session"].client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    return group["Instances"][0]["InstanceId"]


def test_status_without_a_host(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(world, "status", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["host"] is None and data["month-to-date"] is None
    assert data["volume"]["state"] == "available" and data["volume"]["newest-snapshot"] is None
    assert data["schedule"] == {"always-on": True}
    assert data["failed-events"] == 0 and data["on-demand-fallback"]["active"] is False


def test_status_with_a_host_a_snapshot_a_schedule_and_failed_events(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    session = world["session"]
    instance = start_host(world)
    session.client("ec2").attach_volume(VolumeId=world["volume"], InstanceId=instance, Device="/dev/sdf")
    session.client("ec2").create_snapshot(VolumeId=world["volume"])
    session.client("sqs").send_message(QueueUrl=world["queue"], MessageBody="{}")
    for name, recurrence, desired in (("start", "0 9 * * 1-5", 1), ("stop", "0 19 * * 1-5", 0)):
        session.client("autoscaling").put_scheduled_update_group_action(
            AutoScalingGroupName=support.GROUP,
            ScheduledActionName=f"working-hours-{name}",
            Recurrence=recurrence,
            TimeZone="Asia/Tokyo",
            DesiredCapacity=desired,
        )
    assert run(world, "status") == 0
    out = capsys.readouterr().out
    assert instance in out and f"attached to {instance}" in out
    assert "next start Tue 2026-12-08 09:00 JST, next stop Mon 2026-12-07 19:00 JST" in out
    assert "failed events waiting: 1" in out


def test_start_sets_desired_capacity_and_says_the_schedule_returns(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(world, "start") == 0
    (group,) = world["session"].client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert group["DesiredCapacity"] == 1
    assert "desired capacity 0 -> 1" in capsys.readouterr().out


def draining_host(world: dict[str, Any]) -> str:
    """A host holding the volume while it drains: the group's lifecycle hook keeps it after the capacity drops (moto
    has no hooks, and detaches a terminated instance's volumes at once, so it stands outside the group here)."""
    start_host(world)
    ec2 = world["session"].client("ec2")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.attach_volume(VolumeId=world["volume"], InstanceId=instance, Device="/dev/sdf")
    return instance


def test_stop_waits_until_the_volume_is_available(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = world["session"].client("ec2")
    draining = draining_host(world)
    clock = FakeTime()
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:  # the host's drain detaches the volume while we wait
        real_sleep(seconds)
        if len(clock.sleeps) == 3:
            ec2.detach_volume(VolumeId=world["volume"], InstanceId=draining)

    clock.sleep = sleep  # type: ignore[method-assign]
    assert run(world, "stop", clock=clock) == 0
    assert len(clock.sleeps) == 3
    assert "is available (detached) after 15 s" in capsys.readouterr().out


def test_stop_gives_up_after_its_timeout(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    draining_host(world)
    assert run(world, "stop", "--timeout", "12") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "still in-use after 12 s" in err[0]


def test_connect_command_line() -> None:
    assert connect.session_argv("i-0123456789abcdef0", 16379, "ap-northeast-1") == [
        "aws",
        "ssm",
        "start-session",
        "--target",
        "i-0123456789abcdef0",
        "--document-name",
        "AWS-StartPortForwardingSession",
        "--parameters",
        "portNumber=6379,localPortNumber=16379",
        "--region",
        "ap-northeast-1",
    ]


def test_connect_never_prints_or_hands_on_the_password_unless_asked(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    instance = start_host(world)
    world["session"].client("ssm").put_parameter(
        Name="/spot-redis/staging/redis/app-password", Value="s3cret-pw", Type="SecureString"
    )
    calls: list[tuple[list[str], dict[str, str]]] = []

    class Done:
        returncode = 0

    def fake_run(argv: list[str], env: dict[str, str], check: bool) -> Done:
        calls.append((argv, env))
        return Done()

    environ = {"PATH": str(tmp_path)}
    aws_stub = tmp_path / "aws"
    aws_stub.write_text("#!/bin/sh\n")
    aws_stub.chmod(0o755)
    assert run(world, "connect", "--local-port", "17000", run=fake_run, environ=environ) == 0
    [(argv, env)] = calls
    assert instance in argv and "portNumber=6379,localPortNumber=17000" in argv
    assert "REDISCLI_AUTH" not in env and "s3cret-pw" not in " ".join(argv)  # the session needs no password
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "redis-cli -h 127.0.0.1 -p 17000 --user app" in out
    assert (
        'REDISCLI_AUTH="$(aws ssm get-parameter --with-decryption --name /spot-redis/staging/redis/app-password' in out
    )
    assert run(world, "connect", "--print-only", "--show-password") == 0
    assert "REDISCLI_AUTH=s3cret-pw" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["connect", "warmup"])
def test_no_running_host_is_one_line(world: dict[str, Any], capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert run(world, command, "--print-only" if command == "connect" else "--json") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spot-redis {command}: stack 'staging' has no running host: start one with `spot-redis start`"]


def test_no_credentials_is_one_line(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in support.FAKE_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    world["stack"].session = boto3.Session(region_name=support.REGION)
    world["stack"]._clients.clear()
    assert run(world, "status") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spot-redis status: no AWS credentials")


def test_missing_stack_and_outputs_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi CLI
    assert main.main(["status"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "spot-redis status: which stack? give --stack NAME, select one with `pulumi stack select NAME`, "
        "or set PULUMI_STACK=NAME"
    ]
    assert main.main(["status", "--stack", "staging"]) == 1
    assert "the pulumi CLI is not installed; give --outputs FILE" in capsys.readouterr().err
    (tmp_path / "outputs.json").write_text("[1]")
    assert main.main(["status", "--stack", "staging", "--outputs", str(tmp_path / "outputs.json")]) == 1
    assert "is not a JSON object" in capsys.readouterr().err
    (tmp_path / "outputs.json").write_text("{}")
    assert main.main(["status", "--stack", "staging", "--outputs", str(tmp_path / "outputs.json")]) == 1
    assert "has no outputs: deploy it first" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main.main(["stop", "--timeout", "soon"])
    assert exit_.value.code == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("status", "start", "stop", "warmup", "connect", "drill"):
        with pytest.raises(SystemExit) as exit_:
            main.main([command, "--help"])
        assert exit_.value.code == 0
        assert "AWS terms" in capsys.readouterr().out.replace("\n", " ")


def test_schedule_next_firing_and_hours() -> None:
    start = Recurrence.parse("0 9 * * 1-5", "Asia/Tokyo")
    stop = Recurrence.parse("0 19 * * 1-5", "Asia/Tokyo")
    friday_night = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)  # Fri 21:00 JST
    assert start.next_after(friday_night).isoformat() == "2026-12-07T09:00:00+09:00"
    month_start = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)  # Tue 09:00 JST
    assert up_hours(start, stop, month_start, NOW) == 4 * 10 + 1  # Tue-Fri 10 h each, then Mon (Tokyo) 09:00-10:00
