"""The drill against a stack (spot_redis.drill.aws) with moto: Auto Scaling, EC2, FIS, SSM and ECS.

moto holds the stack: the group and its host (tagged with the stack), the data volume attached to it, the drill's
experiment template, the app password in SSM, the warm-up cluster. A script stands in for time and for the world:
the drill's `sleep` moves its clock and plays what happens at each moment (the volume detached, the host leaving the
group so that moto launches the replacement, writes acknowledged). The writer and Redis are fakes: the writer
appends to its log the acknowledgements the test planned, and Redis answers MGET from the keys the test says survived.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from moto import mock_aws

from infra import drill as infra_drill
from infra.config import StackConfig
from infra.parameters import parameter_names
from infra.storage import VOLUME_TAG
from spot_redis.agent.settings import SECRET_PARAMETERS
from spot_redis.drill import aws as drill_aws
from spot_redis.drill.aws import (
    DATA_VOLUME_TAG,
    Clients,
    Drill,
    DrillError,
    Endpoint,
    Target,
    first_replacement_ack,
    target_from,
    warmup_tasks_started,
)
from spot_redis.drill.report import Ack
from spot_redis.events import STACK_TAG
from tests.unit import lambda_support as support

REGION = support.REGION
STACK = support.STACK
GROUP = f"spot-redis-{STACK}-redis"
CLUSTER = f"spot-redis-{STACK}-batch"
PASSWORD = "app-s3cr3t-password"  # noqa: S105 - a fake password
ENV_PASSWORD = "from-the-environment"  # noqa: S105 - a fake password
PARAMETER = f"/spot-redis/{STACK}/redis/app-password"
START = 1_000_000.0  # the script's clock when the drill starts
OLD_ADDRESS, NEW_ADDRESS = "10.0.1.10", "10.0.1.20"


# --- the world: moto, a scripted clock, a fake writer and a fake Redis -------------------------------------------


@dataclass
class Script:
    """The drill's clock and sleep: each sleep moves the clock, then plays every event due by then, in order."""

    now: float = START
    events: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    sleeps: int = 0

    def at(self, offset: float, event: Callable[[], None]) -> None:
        self.events.append((START + offset, event))
        self.events.sort(key=lambda item: item[0])

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= 5, "the drill polls, it does not doze"
        self.sleeps += 1
        self.now += seconds
        while self.events and self.events[0][0] <= self.now:
            self.events.pop(0)[1]()


@dataclass
class FakeWriter:
    """Writes the planned acknowledgements to the drill's log as the script's clock reaches them."""

    script: Script
    planned: list[Ack]
    endpoint: Endpoint | None = None
    password: str | None = None
    prefix: str | None = None
    log_path: Path | None = None
    error: BaseException | None = None
    stopped: bool = False

    def start(self, endpoint: Endpoint, password: str, prefix: str, log_path: Path) -> FakeWriter:
        self.endpoint, self.password, self.prefix, self.log_path = endpoint, password, prefix, log_path
        self.flush()
        return self

    def flush(self) -> None:
        if self.log_path is None or self.stopped:
            return
        due = [ack for ack in self.planned if ack.at <= self.script.now]
        self.planned = [ack for ack in self.planned if ack.at > self.script.now]
        with self.log_path.open("a") as log:
            log.writelines(json.dumps(ack.__dict__) + "\n" for ack in due)

    def stop(self) -> None:
        self.flush()
        self.stopped = True


@dataclass
class FakeRedis:
    """The replacement's Redis as MGET sees it: the keys the test says survived."""

    prefix_of: Callable[[], str | None]
    surviving: set[int]
    logins: list[tuple[Endpoint, str]] = field(default_factory=list)
    closed: bool = False

    def connect(self, endpoint: Endpoint, password: str) -> FakeRedis:
        self.logins.append((endpoint, password))
        return self

    def command(self, name: str, *keys: str) -> list[bytes | None]:
        assert name == "MGET"
        prefix = f"{self.prefix_of()}:"
        seqs = [int(key.removeprefix(prefix)) for key in keys]
        return [str(n).encode() if n in self.surviving else None for n in seqs]

    def close(self) -> None:
        self.closed = True


@dataclass
class Stack:
    clients: Clients
    host: str
    volume_id: str
    template_id: str
    subnet_id: str


def moto_clients() -> Clients:
    return Clients(*(support.client(name) for name in ("autoscaling", "ec2", "fis", "ssm", "ecs")))


def experiment_template(fis: Any) -> str:
    """The drill's template as the program declares it (infra/drill.py), in the FIS API's shape."""
    target = infra_drill.experiment_target(STACK)
    action = infra_drill.experiment_action()
    return fis.create_experiment_template(
        clientToken="drill-template",
        description="the drill",
        roleArn=f"arn:aws:iam::{support.ACCOUNT}:role/spot-redis-drill",
        stopConditions=[{"source": "none"}],
        targets={
            target["name"]: {
                "resourceType": target["resource_type"],
                "resourceTags": {tag["key"]: tag["value"] for tag in target["resource_tags"]},
                "filters": target["filters"],
                "selectionMode": target["selection_mode"],
            }
        },
        actions={
            action["name"]: {
                "actionId": action["action_id"],
                "parameters": {p["key"]: p["value"] for p in action["parameters"]},
                "targets": {action["target"]["key"]: action["target"]["value"]},
            }
        },
    )["experimentTemplate"]["id"]


@pytest.fixture
def stack() -> Iterator[Stack]:
    with mock.patch.dict(os.environ, support.FAKE_AWS_ENV), mock_aws():
        clients = moto_clients()
        ec2 = clients.ec2
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"][
            "SubnetId"
        ]
        ec2.create_launch_template(
            LaunchTemplateName="spot-redis", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t4g.small"}
        )
        clients.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            LaunchTemplate={"LaunchTemplateName": "spot-redis", "Version": "$Latest"},
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=1,
            VPCZoneIdentifier=subnet_id,
            Tags=[{"Key": STACK_TAG, "Value": STACK, "PropagateAtLaunch": True}],
        )
        host = group_hosts(clients)[0]
        volume_tags = {STACK_TAG: STACK, DATA_VOLUME_TAG: f"{STACK}-data"}
        volume_id = ec2.create_volume(
            AvailabilityZone=f"{REGION}a",
            Size=20,
            TagSpecifications=[
                {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in volume_tags.items()]}
            ],
        )["VolumeId"]
        ec2.attach_volume(VolumeId=volume_id, InstanceId=host, Device="/dev/sdf")
        clients.ssm.put_parameter(Name=PARAMETER, Value=PASSWORD, Type="SecureString")
        yield Stack(clients, host, volume_id, experiment_template(clients.fis), subnet_id)


def group_hosts(clients: Clients) -> list[str]:
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    return [instance["InstanceId"] for instance in group["Instances"]]


def acks(first_seq: int, start: float, end: float, address: str, every: float = 1.0) -> list[Ack]:
    """One acknowledged write every `every` seconds from START+start to START+end (inclusive)."""
    count = round((end - start) / every) + 1
    return [Ack(first_seq + i, START + start + i * every, address) for i in range(count)]


@dataclass
class Run:
    drill: Drill
    script: Script
    writer: FakeWriter
    redis: FakeRedis
    said: list[str]


def make_drill(
    stack: Stack,
    tmp_path: Path,
    planned: list[Ack],
    *,
    surviving: set[int] | None = None,
    resolve: str = "dns:redis.staging.internal",
    target: Target | None = None,
    environ: dict[str, str] | None = None,
) -> Run:
    script = Script()
    writer = FakeWriter(script, planned)
    redis = FakeRedis(lambda: writer.prefix, surviving if surviving is not None else {a.seq for a in planned})
    said: list[str] = []
    drill = Drill(
        clients=stack.clients,
        target=target or Target(template_id=stack.template_id, group_name=GROUP),
        endpoint=Endpoint(resolve, 6379, "app", REGION),
        log_path=tmp_path / "acks.jsonl",
        prefix="drill:test-run",
        environ=environ or {},
        start_writer=writer.start,
        connect=redis.connect,
        clock=script.clock,
        sleep=script.sleep,
        say=said.append,
    )
    script.at(0.0, writer.flush)  # the writer keeps writing whatever the drill is doing: the script flushes it
    return Run(drill, script, writer, redis, said)


def keep_flushing(run: Run, until: float) -> None:
    for second in range(1, int(until) + 1):
        run.script.at(float(second), run.writer.flush)


def interruption(run: Run, stack: Stack, *, released: float = 30.0, replaced: float = 35.0) -> None:
    """What the host's drain and the group do after the notice: the volume let go, then the host leaves the group
    (moto launches the replacement at once)."""
    ec2, autoscaling = stack.clients.ec2, stack.clients.autoscaling
    run.script.at(released, lambda: ec2.detach_volume(VolumeId=stack.volume_id, InstanceId=stack.host))
    run.script.at(
        replaced,
        lambda: autoscaling.detach_instances(
            InstanceIds=[stack.host], AutoScalingGroupName=GROUP, ShouldDecrementDesiredCapacity=False
        ),
    )


# --- the whole drill ---------------------------------------------------------------------------------------------


def test_a_drill_through_the_name_measures_the_takeover(stack: Stack, tmp_path: Path) -> None:
    # The old host acknowledges writes 1..26 (until 20 s after the notice); the replacement from 40 s on.
    planned = acks(1, -5.0, 20.0, OLD_ADDRESS) + acks(27, 40.0, 60.0, NEW_ADDRESS)
    run = make_drill(stack, tmp_path, planned, surviving={a.seq for a in planned} - {25, 26})
    keep_flushing(run, 60)
    interruption(run, stack)

    report = run.drill.run()

    (replacement,) = group_hosts(stack.clients)
    assert replacement != stack.host
    assert (report.variant, report.old_host, report.new_host) == ("fis-notice", stack.host, replacement)
    assert report.drain_s == 30.0
    assert report.rto_s == 40.0
    assert report.lost_writes == 2
    assert report.loss_window_s == 2.0  # from write 24 (the last kept) to write 26 (the last acknowledged)
    assert report.acked_writes == len([a for a in planned if a.at <= run.script.now])
    assert (report.dataset, report.slack_titles, report.warmup_tasks_started) == (None, [], 0)
    assert run.writer.stopped
    assert run.redis.closed


def test_the_drill_interrupts_through_the_template_and_writes_as_the_app(stack: Stack, tmp_path: Path) -> None:
    planned = acks(1, -5.0, 20.0, OLD_ADDRESS) + acks(27, 40.0, 60.0, NEW_ADDRESS)
    run = make_drill(stack, tmp_path, planned)
    keep_flushing(run, 60)
    interruption(run, stack)

    run.drill.run()

    (experiment,) = stack.clients.fis.list_experiments()["experiments"]
    assert experiment["experimentTemplateId"] == stack.template_id
    assert run.writer.password == PASSWORD  # read from the stack's parameter
    assert run.writer.prefix == "drill:test-run"
    assert [login[1] for login in run.redis.logins] == [PASSWORD]
    assert run.writer.endpoint == run.redis.logins[0][0] == Endpoint("dns:redis.staging.internal", 6379, "app", REGION)
    assert not any(PASSWORD in line for line in run.said)


def test_through_a_port_forward_the_replacement_is_the_first_write_after_the_volume_left(
    stack: Stack, tmp_path: Path
) -> None:
    # Every write has 127.0.0.1: the drill cannot tell the hosts by address. A pause of the forward before the drain
    # (writes stop from 8 s to 15 s, then resume on the old host) must not pass for the replacement.
    planned = acks(1, -5.0, 8.0, "127.0.0.1") + acks(15, 15.0, 20.0, "127.0.0.1") + acks(21, 40.0, 60.0, "127.0.0.1")
    run = make_drill(stack, tmp_path, planned, resolve="fixed:127.0.0.1")
    keep_flushing(run, 60)
    interruption(run, stack)

    report = run.drill.run()

    assert report.rto_s == 40.0
    assert report.drain_s == 30.0
    assert report.lost_writes == 0 and report.loss_window_s == 0.0


def test_a_write_from_the_old_address_after_the_volume_left_is_not_the_replacement(
    stack: Stack, tmp_path: Path
) -> None:
    # Through the name, a client may still reach the old address for a TTL: only a new address counts.
    planned = acks(1, -5.0, 20.0, OLD_ADDRESS) + acks(26, 32.0, 33.0, OLD_ADDRESS) + acks(28, 44.0, 60.0, NEW_ADDRESS)
    run = make_drill(stack, tmp_path, planned)
    keep_flushing(run, 60)
    interruption(run, stack)

    assert run.drill.run().rto_s == 44.0


def test_warmup_tasks_started_by_the_replacement_are_counted(stack: Stack, tmp_path: Path) -> None:
    ecs = stack.clients.ecs
    ecs.create_cluster(clusterName=CLUSTER)
    # Not awsvpc: moto 5.2.5 cannot create a task's ENI (see tests/unit/lambdas/test_warmup.py).
    ecs.register_task_definition(
        family="warmup", networkMode="bridge", containerDefinitions=[{"name": "warmup", "image": "w", "memory": 512}]
    )

    def warmup_by_the_replacement() -> None:
        (replacement,) = group_hosts(stack.clients)
        ecs.run_task(cluster=CLUSTER, taskDefinition="warmup", launchType="FARGATE", startedBy=replacement)
        ecs.run_task(cluster=CLUSTER, taskDefinition="warmup", launchType="FARGATE", startedBy="i-0someoneelse")

    planned = acks(1, -5.0, 20.0, OLD_ADDRESS) + acks(27, 40.0, 60.0, NEW_ADDRESS)
    target = Target(template_id=stack.template_id, group_name=GROUP, cluster_name=CLUSTER)
    run = make_drill(stack, tmp_path, planned, target=target)
    keep_flushing(run, 60)
    interruption(run, stack)
    run.script.at(38.0, warmup_by_the_replacement)

    assert run.drill.run().warmup_tasks_started == 1


def test_the_password_from_the_environment_wins_and_ssm_is_not_asked(stack: Stack, tmp_path: Path) -> None:
    stack.clients.ssm.delete_parameter(Name=PARAMETER)
    planned = acks(1, -5.0, 20.0, OLD_ADDRESS) + acks(27, 40.0, 60.0, NEW_ADDRESS)
    run = make_drill(stack, tmp_path, planned, environ={"SPOT_REDIS_DRILL_PASSWORD": ENV_PASSWORD})
    keep_flushing(run, 60)
    interruption(run, stack)

    run.drill.run()

    assert run.writer.password == ENV_PASSWORD


# --- waiting, bounded --------------------------------------------------------------------------------------------


def test_no_takeover_within_the_bound_stops_the_writer_and_says_what_is_missing(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, acks(1, -5.0, 20.0, OLD_ADDRESS))  # the replacement never answers
    keep_flushing(run, 20)
    interruption(run, stack)

    with pytest.raises(DrillError, match="still waiting for a write acknowledged by the replacement") as error:
        run.drill.run()

    assert "volume" not in str(error.value) and "in service" not in str(error.value)
    assert run.script.now >= START + drill_aws.TAKEOVER_TIMEOUT_S
    assert run.writer.stopped


def test_a_stack_where_nothing_happens_names_every_missing_step(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, acks(1, -5.0, 0.0, OLD_ADDRESS))

    with pytest.raises(DrillError) as error:
        run.drill.run()

    for step in (
        "the data volume to leave the old host",
        "a new instance in service",
        "acknowledged by the replacement",
    ):
        assert step in str(error.value)


def test_no_first_write_means_no_experiment(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, [])

    with pytest.raises(DrillError, match=r"no write acknowledged through dns:redis.staging.internal port 6379"):
        run.drill.run()

    assert stack.clients.fis.list_experiments()["experiments"] == []
    assert run.writer.stopped
    assert run.script.now >= START + drill_aws.FIRST_WRITE_TIMEOUT_S


def test_a_writer_that_dies_stops_the_drill(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, acks(1, -5.0, 20.0, OLD_ADDRESS))
    keep_flushing(run, 20)
    interruption(run, stack)
    run.script.at(25.0, lambda: setattr(run.writer, "error", PermissionError("acks.jsonl: read-only file system")))

    with pytest.raises(DrillError, match=r"the writer stopped: PermissionError: acks\.jsonl: read-only file system"):
        run.drill.run()

    assert run.script.now < START + 30
    assert run.writer.stopped


def test_a_failed_experiment_stops_the_drill_at_once(stack: Stack, tmp_path: Path) -> None:
    class FailingFis:
        def __init__(self, fis: Any):
            self.fis = fis
            self.exceptions = fis.exceptions

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fis, name)

        def get_experiment(self, id: str) -> dict:
            experiment = self.fis.get_experiment(id=id)
            experiment["experiment"]["state"] = {"status": "failed", "reason": "Target resolution returned empty set"}
            return experiment

    stack.clients.fis = FailingFis(stack.clients.fis)
    run = make_drill(stack, tmp_path, acks(1, -5.0, 20.0, OLD_ADDRESS))

    with pytest.raises(DrillError, match=r"experiment \w+ failed: Target resolution returned empty set"):
        run.drill.run()

    assert run.script.sleeps == 0
    assert run.writer.stopped


# --- before anything happens ------------------------------------------------------------------------------------


def test_an_unknown_template_is_said_plainly(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, [], target=Target(template_id="EXTnotthere", group_name=GROUP))

    with pytest.raises(DrillError, match="experiment template EXTnotthere not found in this region"):
        run.drill.run()

    assert run.writer.log_path is None, "the writer never started"


def test_a_group_without_its_host_is_refused(stack: Stack, tmp_path: Path) -> None:
    stack.clients.autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)
    run = make_drill(stack, tmp_path, [])

    with pytest.raises(DrillError, match=f"the group {GROUP} has 0 instances in service, not one: start the host"):
        run.drill.run()


def test_an_unknown_group_is_refused(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, [], target=Target(template_id=stack.template_id, group_name="nope"))

    with pytest.raises(DrillError, match="no Auto Scaling group 'nope'"):
        run.drill.run()


def test_a_second_running_instance_of_the_stack_is_refused(stack: Stack, tmp_path: Path) -> None:
    # COUNT(1) could pick it instead of the host: the drill waits until only the host runs.
    other = support.run_instance(STACK)
    run = make_drill(stack, tmp_path, [])

    with pytest.raises(DrillError, match=f"{other}.* of stack {STACK} are running: wait until only the host is"):
        run.drill.run()


def test_a_missing_password_parameter_is_said_plainly(stack: Stack, tmp_path: Path) -> None:
    stack.clients.ssm.delete_parameter(Name=PARAMETER)
    run = make_drill(stack, tmp_path, [])

    with pytest.raises(DrillError, match=f"no SSM parameter {PARAMETER}: set SPOT_REDIS_DRILL_PASSWORD"):
        run.drill.run()


def test_the_data_volume_is_found_by_its_tags_or_taken_from_the_outputs(stack: Stack, tmp_path: Path) -> None:
    run = make_drill(stack, tmp_path, [])
    assert run.drill.preflight().volume_id == stack.volume_id
    given = Target(template_id=stack.template_id, group_name=GROUP, volume_id="vol-0given")
    assert make_drill(stack, tmp_path, [], target=given).drill.preflight().volume_id == "vol-0given"


# --- pieces ------------------------------------------------------------------------------------------------------


def test_the_replacements_first_write_is_after_the_release_and_from_another_address() -> None:
    log = [Ack(1, 10.0, "a"), Ack(2, 31.0, "a"), Ack(3, 40.0, "b"), Ack(4, 41.0, "b")]
    assert first_replacement_ack(log, released_at=30.0, old_address="a") == Ack(3, 40.0, "b")
    assert first_replacement_ack(log, released_at=30.0, old_address=None) == Ack(2, 31.0, "a")
    assert first_replacement_ack(log, released_at=50.0, old_address=None) is None


def test_no_cluster_no_warmup_count() -> None:
    assert warmup_tasks_started(ecs=None, cluster=None, instance_id="i-0") == 0


def test_what_the_drill_looks_for_is_what_the_program_makes() -> None:
    assert DATA_VOLUME_TAG == VOLUME_TAG
    assert drill_aws.APP_PASSWORD in SECRET_PARAMETERS
    prefix = StackConfig.parameter_prefix.fget(SimpleNamespace(stack=STACK))  # type: ignore[attr-defined]
    assert parameter_names(SimpleNamespace(parameter_prefix=prefix))["redis-app-password"] == PARAMETER  # type: ignore[arg-type]


# --- the command: its arguments and outputs ----------------------------------------------------------------------


def args(**values: Any) -> SimpleNamespace:
    defaults = {"stack_outputs": None, "template_id": None, "group_name": None, "volume_id": None, "cluster": None}
    return SimpleNamespace(**(defaults | values))


def test_the_stack_outputs_name_everything_the_drill_needs(tmp_path: Path) -> None:
    from tests.unit.pulumi_harness import run_program

    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(run_program().outputs))  # what `pulumi stack output --json` prints
    assert target_from(args(stack_outputs=outputs)) == Target(
        template_id="drill-experiment-id",
        group_name="spot-redis-example-redis",
        volume_id="vol-0123456789abcdef0",
        cluster_name="spot-redis-example-batch",
        password_parameter="/spot-redis/example/redis/app-password",  # noqa: S106 - a parameter's name
    )


def test_a_flag_wins_over_an_output(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"drillExperimentTemplateId": "EXTfromoutputs", "asgName": "group-from-outputs"}))
    target = target_from(args(stack_outputs=outputs, template_id="EXTflag"))
    assert (target.template_id, target.group_name) == ("EXTflag", "group-from-outputs")
    assert target_from(args(template_id="EXT1", group_name="g")) == Target(template_id="EXT1", group_name="g")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read --stack-outputs"),
        ("Current stack outputs (2):", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"asgName": "g"}', "which experiment\\? give --template-id"),
        ('{"drillExperimentTemplateId": "EXT1"}', "which Auto Scaling group\\? give --group-name"),
    ],
)
def test_bad_outputs_are_said_plainly(tmp_path: Path, content: str | None, message: str) -> None:
    outputs = tmp_path / "outputs.json"
    if content is not None:
        outputs.write_text(content)
    with pytest.raises(DrillError, match=message):
        target_from(args(stack_outputs=outputs))


def run_command(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spot_redis.drill.aws", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(support.REPO), **env},
        cwd=support.REPO,
    )


NO_AWS = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def test_without_credentials_the_command_says_so_in_one_line() -> None:
    done = run_command("--template-id", "EXT1", "--group-name", GROUP, "--region", REGION, "--resolve",
                       "fixed:127.0.0.1", env=NO_AWS)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == ["drill: no AWS credentials: set AWS_PROFILE (or log in with "
                                                "`aws sso login`) and try again"]  # fmt: skip


def test_a_malformed_resolve_is_refused_before_anything_is_touched() -> None:
    done = run_command("--template-id", "EXT1", "--group-name", GROUP, "--resolve", "redis.example", env=NO_AWS)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "drill: --resolve 'redis.example': use cloudmap:NAMESPACE/SERVICE, dns:NAME or fixed:ADDRESS"
    )


def test_the_command_reports_an_unknown_template_without_a_traceback(stack: Stack, capsys: Any) -> None:
    code = drill_aws.main(
        ["--template-id", "EXTnotthere", "--group-name", GROUP, "--resolve", "fixed:127.0.0.1"], clients=stack.clients
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert (
        err == "drill: experiment template EXTnotthere not found in this region (wrong --region, or not deployed yet)\n"
    )


def test_the_report_is_printed_as_a_table_then_one_json_line_last(stack: Stack, tmp_path: Path, capsys: Any) -> None:
    planned = acks(1, -5.0, 20.0, OLD_ADDRESS) + acks(27, 40.0, 60.0, NEW_ADDRESS)
    run = make_drill(stack, tmp_path, planned)
    keep_flushing(run, 60)
    interruption(run, stack)
    report = run.drill.run()

    drill_aws.print_report(report)

    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[-1]) == json.loads(report.json_line())
    assert lines[0].startswith("variant") and "fis-notice" in lines[0]
    assert drill_aws.SLACK_NOTE in lines


def test_the_background_writer_stops_when_told_even_without_redis(tmp_path: Path) -> None:
    # Nothing listens on port 9 of 127.0.0.1: the writer retries until stopped, and logs nothing.
    writer = drill_aws.BackgroundWriter(Endpoint("fixed:127.0.0.1", 9), "password", "drill:t", tmp_path / "acks.jsonl")
    writer.stop()
    assert writer.error is None
    assert (tmp_path / "acks.jsonl").read_text() == ""
