"""spot-redis status, start, stop and connect against moto; every bad input is one line and exit 1."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
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
        template = ec2.create_launch_template(
            LaunchTemplateName="t", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t4g.small"}
        )
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


def schedule_working_hours(session: Any) -> None:
    """The group's scheduled actions as infra/compute.py makes them: Mon-Fri 09:00-19:00 in Tokyo."""
    for name, recurrence, desired in (("start", "0 9 * * 1-5", 1), ("stop", "0 19 * * 1-5", 0)):
        session.client("autoscaling").put_scheduled_update_group_action(
            AutoScalingGroupName=support.GROUP,
            ScheduledActionName=f"working-hours-{name}",
            Recurrence=recurrence,
            TimeZone="Asia/Tokyo",
            DesiredCapacity=desired,
        )


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
    schedule_working_hours(session)
    assert run(world, "status") == 0
    out = capsys.readouterr().out
    assert instance in out and f"attached to {instance}" in out
    assert "next start Tue 2026-12-08 09:00 JST, next stop Mon 2026-12-07 19:00 JST" in out
    assert "failed events waiting: 1" in out


def test_status_prices_the_month_so_far_with_the_cost_model(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    session = world["session"]
    start_host(world)
    schedule_working_hours(session)
    config = yaml.safe_load(Path("Pulumi.example.yaml").read_text())["config"]
    world["stack"] = Stack(support.STACK, world["stack"].outputs, config, support.REGION, session=session)
    assert run(world, "status", "--json") == 0
    estimate = json.loads(capsys.readouterr().out)["month-to-date"]
    hours = 41  # Tue 1 Dec to Mon 7 Dec 10:00 in Tokyo: four days of 10 h, and an hour
    share = (6 * 24 + 1) / (31 * 24)  # of December gone at Mon 7 Dec 01:00 UTC
    spot = 0.00001  # moto's Spot price history
    running = hours * spot + 8 * hours / 730 * 0.096 + hours * 0.005  # host, root volume, public address
    glue = 0.001 * 0.2 + 125 * 0.0000133334 + 0.01 * 0.4 + 0.002 * 0.715 + 0.002 * 0.1425 + 0.0001 * 0.5
    monthly = 12 * 0.096 + (4.8 + 0.1 * 12 * 2.8) * 0.05 + 0.64 + glue + 0.05 * 0.76 + 0.10
    assert estimate["hours"] == hours
    assert estimate["usd"] == pytest.approx(running + monthly * share, abs=0.005)
    assert "the current Spot price" in estimate["scope"] and "19% of the month" in estimate["scope"]


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


class ScriptedEcs:
    """ECS as `warmup --wait` sees it: an older task of the host, then the one the Lambda starts, which stops with
    ``exit_code`` after ``polls_running`` looks (moto's ECS gives no container exit codes)."""

    OLD, NEW = "arn:aws:ecs:task/old", "arn:aws:ecs:task/new"

    def __init__(self, exit_code: int | None, polls_running: int = 2, appears_after: int = 1) -> None:
        self.exit_code, self.polls_running, self.appears_after = exit_code, polls_running, appears_after
        self.listed = 0
        self.described = 0
        self.asked: list[dict[str, Any]] = []

    def list_tasks(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs)
        if kwargs["desiredStatus"] == "STOPPED":
            return {"taskArns": [self.OLD]}
        self.listed += 1
        return {"taskArns": [self.NEW] if self.listed > self.appears_after else []}

    def describe_tasks(self, cluster: str, tasks: list[str]) -> dict[str, Any]:
        assert tasks == [self.NEW]
        self.described += 1
        if self.described <= self.polls_running:
            return {"tasks": [{"taskArn": self.NEW, "lastStatus": "RUNNING", "containers": [{}]}]}
        container = {} if self.exit_code is None else {"exitCode": self.exit_code}
        return {
            "tasks": [
                {"taskArn": self.NEW, "lastStatus": "STOPPED", "stoppedReason": "done", "containers": [container]}
            ]
        }


class EcsSession:
    def __init__(self, session: Any, ecs: ScriptedEcs) -> None:
        self.session, self.ecs = session, ecs

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.ecs if service == "ecs" else self.session.client(service, **kwargs)


def waiting_stack(world: dict[str, Any], ecs: ScriptedEcs) -> Stack:
    stack = world["stack"]
    return Stack(stack.name, stack.outputs, stack.config, stack.region, session=EcsSession(world["session"], ecs))


@pytest.mark.parametrize(("exit_code", "code"), [(0, 0), (3, 1)])
def test_warmup_wait_follows_the_new_task_to_its_exit_code(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], exit_code: int, code: int
) -> None:
    instance = start_host(world)
    ecs = ScriptedEcs(exit_code)
    world["stack"] = waiting_stack(world, ecs)
    clock = FakeTime()
    assert run(world, "warmup", "--wait", "--json", clock=clock) == code
    data = json.loads(capsys.readouterr().out)
    assert data["task-arn"] == ScriptedEcs.NEW  # not the host's older task
    assert data["exit-code"] == exit_code and data["stopped-reason"] == "done"
    assert {asked["startedBy"] for asked in ecs.asked} == {instance}
    assert {asked["cluster"] for asked in ecs.asked} == {"spot-redis-staging"}
    assert clock.sleeps and set(clock.sleeps) == {10.0}  # it polled, and never for real


def test_warmup_wait_gives_up_in_one_line(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    start_host(world)
    world["stack"] = waiting_stack(world, ScriptedEcs(0, polls_running=10_000))
    assert run(world, "warmup", "--wait", "--timeout", "60") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spot-redis warmup: task {ScriptedEcs.NEW} still running after 60 s"]


def test_warmup_wait_says_when_no_task_starts(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    instance = start_host(world)
    world["stack"] = waiting_stack(world, ScriptedEcs(0, appears_after=10_000))
    assert run(world, "warmup", "--wait") == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"spot-redis warmup: no warm-up task started for {instance} within 120 s")


def test_drill_hands_the_stacks_outputs_and_region_to_the_aws_drill(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from spot_redis.drill import aws as drill

    seen: dict[str, Any] = {}

    def fake_drill(argv: list[str]) -> int:
        seen["argv"] = argv
        seen["outputs"] = json.loads(Path(argv[argv.index("--stack-outputs") + 1]).read_text())
        return 3

    monkeypatch.setattr(drill, "main", fake_drill)
    assert run(world, "drill", "--", "--resolve", "dns:redis.staging.internal") == 3  # the drill's own exit code
    assert seen["outputs"] == world["stack"].outputs
    assert seen["argv"][2:] == ["--region", support.REGION, "--resolve", "dns:redis.staging.internal"]
    assert not Path(seen["argv"][1]).exists()  # the outputs file is not left behind
