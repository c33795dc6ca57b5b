"""lambdas/warmup with moto: one warm-up task per host boot, only in working hours, on the given network.

The function is loaded from its file as `warmup_app` (the notify function also has an app.py), with lambdas/ and
lambdas/warmup/ on sys.path as in its zip (`common` package, `warmup_hours` module). Its settings come from the
environment, its clients and clock from lambdas/common (common.runtime's `clients` and `clock`), as in Lambda.
"""

from __future__ import annotations

import datetime
import importlib.util
import io
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from spot_redis.events import HOST_READY, SOURCE, WARMUP_DATASETS, WARMUP_FINISHED, WARMUP_STARTED, Dataset

REPO = Path(__file__).resolve().parents[3]
LAMBDAS = REPO / "lambdas"
for folder in (LAMBDAS, LAMBDAS / "warmup"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
_spec = importlib.util.spec_from_file_location("warmup_app", LAMBDAS / "warmup" / "app.py")
assert _spec and _spec.loader
app = importlib.util.module_from_spec(_spec)
sys.modules["warmup_app"] = app
_spec.loader.exec_module(app)

from common import idempotency  # noqa: E402 - lambdas/ is on sys.path from here
from common.runtime import SettingError, clients, clock  # noqa: E402

REGION = "ap-northeast-1"
STACK = "staging"
AMI = "ami-12c6146b"
TOKYO = datetime.timezone(datetime.timedelta(hours=9))
MONDAY_10_JST = datetime.datetime(2025, 6, 2, 10, 0, tzinfo=TOKYO)
SATURDAY_10_JST = datetime.datetime(2025, 6, 7, 10, 0, tzinfo=TOKYO)
MONDAY_20_JST = datetime.datetime(2025, 6, 2, 20, 0, tzinfo=TOKYO)


class FakeContext:
    function_name = "spot-redis-staging-warmup"
    memory_limit_in_mb = 128
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:spot-redis-staging-warmup"
    aws_request_id = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class RecordingEcs:
    """Passes every call to moto's ECS client and keeps RunTask's arguments (moto keeps only part of them)."""

    def __init__(self, client: Any):
        self._client = client
        self.run_task_calls: list[dict[str, Any]] = []

    def run_task(self, **kwargs: Any) -> Any:
        self.run_task_calls.append(kwargs)
        return self._client.run_task(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class NoCapacityOnceEcs(RecordingEcs):
    """The first RunTask answers only `failures` (no Fargate Spot capacity), later ones start the task.

    Like ECS, a RunTask repeating an earlier clientToken gets that earlier call's answer back.
    """

    def __init__(self, client: Any):
        super().__init__(client)
        self._answers: dict[str, Any] = {}

    def run_task(self, **kwargs: Any) -> Any:
        token = kwargs.get("clientToken")
        if token is not None and token in self._answers:
            self.run_task_calls.append(kwargs)
            return self._answers[token]
        if not self.run_task_calls:
            self.run_task_calls.append(kwargs)
            answer: Any = {"tasks": [], "failures": [{"reason": "RESOURCE:FARGATE"}]}
        else:
            answer = super().run_task(**kwargs)
        if token is not None:
            self._answers[token] = answer
        return answer


class World:
    """One test's AWS resources in moto, handed to the function through common.runtime's clients and clock."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.ecs = RecordingEcs(boto3.client("ecs", region_name=REGION))
        self.events = boto3.client("events", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        for service in ("ec2", "events", "dynamodb"):
            clients.set(service, getattr(self, service))
        self.now = MONDAY_10_JST

        # Not created in moto: the task definition is not awsvpc (see below), so nothing looks them up.
        self.subnets = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
        self.security_groups = ["sg-0a1b2c3d4e5f60001", "sg-0a1b2c3d4e5f60002"]
        self.cluster_arn = self.ecs.create_cluster(clusterName=f"spot-redis-{name}")["cluster"]["clusterArn"]
        self.task_definition_arn = self.ecs.register_task_definition(
            family=f"spot-redis-{name}-warmup",
            # Not "awsvpc": moto 5.2.5 fails creating the task's ENI (NetworkInterface has no private_dns_name),
            # so moto records no network settings; RecordingEcs checks the request instead.
            networkMode="bridge",
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "warmup", "image": "warmup:latest", "essential": True, "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
        self.table = f"idempotency-{name}"
        self.dynamodb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        queue_url = self.sqs.create_queue(QueueName=f"seen-{name}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.queue_url = queue_url
        self.rule = f"spot-redis-events-{name}"
        self.events.put_rule(Name=self.rule, EventPattern=json.dumps({"source": [SOURCE]}))
        self.events.put_targets(Rule=self.rule, Targets=[{"Id": "queue", "Arn": queue_arn}])

        self.ours = self.instance({"spot-redis:stack": STACK})
        self.foreign = self.instance({"spot-redis:stack": "production"})

    @property
    def ecs(self) -> RecordingEcs:
        return self._ecs

    @ecs.setter
    def ecs(self, client: RecordingEcs) -> None:
        self._ecs = client
        clients.set("ecs", client)

    @property
    def now(self) -> datetime.datetime:
        return self._now

    @now.setter
    def now(self, moment: datetime.datetime) -> None:
        self._now = moment
        clock.fixed = moment

    def instance(self, tags: dict[str, str]) -> str:
        return self.ec2.run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"][0]["InstanceId"]

    def environ(self, work_hours: str, assign_public_ip: str | None = "ENABLED") -> dict[str, str]:
        variables = {
            "STACK_NAME": STACK,
            "IDEMPOTENCY_TABLE": self.table,
            "CLUSTER_ARN": self.cluster_arn,
            "TASK_DEFINITION_ARN": self.task_definition_arn,
            "SUBNET_IDS": ",".join(self.subnets),
            "SECURITY_GROUP_IDS": ",".join(self.security_groups),
            "WORK_HOURS": work_hours,
        }
        return variables if assign_public_ip is None else {**variables, "ASSIGN_PUBLIC_IP": assign_public_ip}

    def configure(self, monkeypatch: pytest.MonkeyPatch, work_hours: str, **changes: Any) -> None:
        """The function's environment, as infra/alerting.py sets it."""
        monkeypatch.delenv("ASSIGN_PUBLIC_IP", raising=False)
        for name, value in self.environ(work_hours, **changes).items():
            monkeypatch.setenv(name, value)

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, Ids=["queue"])
        self.events.delete_rule(Name=self.rule)

    def task_arns(self) -> list[str]:
        return self.ecs.list_tasks(cluster=self.cluster_arn)["taskArns"]

    def published(self) -> list[dict[str, Any]]:
        seen = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return seen
            for message in messages:
                seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def aws() -> Any:
    """One moto for the module (a fresh EC2 backend costs about a second); each test gets its own resources."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": "spot-redis-staging-warmup",
        }.items():
            monkeypatch.setenv(name, value)
        with mock_aws():
            yield


@pytest.fixture
def world(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    world = World(uuid.uuid4().hex[:12])
    try:
        world.configure(monkeypatch, "Mon,Tue,Wed,Thu,Fri 09:00-19:00 Asia/Tokyo")
        yield world
    finally:
        clients.reset()
        idempotency.reset()
        clock.fixed = None
        world.close()


@pytest.fixture
def logs() -> Any:
    """The function's log lines, as Powertools formats them (JSON objects)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(app.logger.registered_formatter)
    app.logger._logger.addHandler(handler)
    lines: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line)
        stream.seek(0)
        stream.truncate()
        return lines

    yield read
    app.logger._logger.removeHandler(handler)


def ready_event(
    instance_id: Any,
    dataset: Any = "empty",
    stack: str = STACK,
    detail_type: str = HOST_READY.detail_type,
    **extra: Any,
) -> dict[str, Any]:
    """HOST_READY as EventBridge delivers it (not built with spot_redis.events.entry: the malformed cases need that),
    with keys of the contract only."""
    assert set(extra) <= set(HOST_READY.keys), extra
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": "123456789012",
        "time": "2025-06-02T01:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {"instance-id": instance_id, "stack": stack, "dataset": dataset, **extra},
    }


def stopped_event(world: World, task_arn: str, exit_code: int | None, started_by: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "warmup", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2025-06-02T01:20:00Z",
        "region": REGION,
        "resources": [task_arn],
        "detail": {
            "clusterArn": world.cluster_arn,
            "taskArn": task_arn,
            "taskDefinitionArn": world.task_definition_arn,
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "startedBy": started_by,
            "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
            "containers": [container],
        },
    }


def invoke(event: Any) -> dict[str, Any]:
    return app.handler(event, FakeContext())


def test_an_empty_dataset_starts_one_task_per_boot_and_announces_it(world: World) -> None:
    first = invoke(ready_event(world.ours))
    again = invoke(ready_event(world.ours))  # redelivered, with another event id

    assert first["action"] == "started"
    assert again["action"] == "duplicate"
    assert again["task_arn"] == first["task_arn"]
    assert world.task_arns() == [first["task_arn"]]
    assert len(world.ecs.run_task_calls) == 1
    (started,) = world.published()
    assert started["detail-type"] == WARMUP_STARTED.detail_type
    assert started["source"] == SOURCE
    assert started["detail"] == {
        "instance-id": world.ours,
        "stack": STACK,
        "task-arn": first["task_arn"],
        "trigger": HOST_READY.detail_type,
        "dataset": "empty",
    }


def test_a_new_boot_gets_its_own_task(world: World) -> None:
    replacement = world.instance({"spot-redis:stack": STACK})
    invoke(ready_event(world.ours))
    invoke(ready_event(replacement))
    assert len(world.task_arns()) == 2


@pytest.mark.parametrize(
    ("assign_public_ip", "sent"), [("ENABLED", "ENABLED"), ("DISABLED", "DISABLED"), (None, "ENABLED")]
)
def test_the_task_runs_on_the_given_network_on_fargate_spot(
    world: World, monkeypatch: pytest.MonkeyPatch, assign_public_ip: str | None, sent: str
) -> None:
    """ENABLED (the default) lets the task reach ECR and SSM from a public subnet without NAT."""
    world.configure(monkeypatch, "", assign_public_ip=assign_public_ip)
    result = invoke(ready_event(world.ours))
    (task,) = world.ecs.describe_tasks(cluster=world.cluster_arn, tasks=[result["task_arn"]])["tasks"]
    assert task["startedBy"] == world.ours
    assert task["taskDefinitionArn"] == world.task_definition_arn

    # moto drops networkConfiguration (see register_task_definition above): check the request itself.
    (call,) = world.ecs.run_task_calls
    assert call["cluster"] == world.cluster_arn
    assert call["taskDefinition"] == world.task_definition_arn
    assert call["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in call
    assert call["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": world.subnets,
            "securityGroups": world.security_groups,
            "assignPublicIp": sent,
        }
    }
    assert call["startedBy"] == world.ours
    assert "tags" not in call  # tags on RunTask would need ecs:TagResource
    assert "clientToken" not in call  # a retry after `failures` must be a new attempt, not ECS's replayed answer


def test_a_bad_public_ip_setting_is_a_deployment_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.configure(monkeypatch, "", assign_public_ip="YES")
    with pytest.raises(SettingError, match="ASSIGN_PUBLIC_IP is 'YES', not one of ENABLED, DISABLED"):
        invoke(ready_event(world.ours))
    assert world.ecs.run_task_calls == []


@pytest.mark.parametrize("now", [SATURDAY_10_JST, MONDAY_20_JST], ids=["weekend", "evening"])
def test_nothing_starts_outside_working_hours_and_the_log_says_why(world: World, logs: Any, now: Any) -> None:
    world.now = now
    result = invoke(ready_event(world.ours))

    assert result["action"] == "skipped"
    assert world.task_arns() == []
    assert world.published() == []
    (line,) = [line for line in logs() if "outside working hours" in line["message"]]
    assert world.ours in line["message"]
    assert "Mon,Tue,Wed,Thu,Fri 09:00-19:00 Asia/Tokyo" in line["message"]
    assert line["event_id"]


def test_day_ranges_and_always_on(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.now = SATURDAY_10_JST
    world.configure(monkeypatch, "Mon-Fri 09:00-19:00 Asia/Tokyo")
    assert invoke(ready_event(world.ours))["action"] == "skipped"

    world.configure(monkeypatch, "")  # empty: always on
    assert invoke(ready_event(world.ours))["action"] == "started"


def test_only_an_empty_dataset_warms_up() -> None:
    assert set(WARMUP_DATASETS) == {Dataset.EMPTY}


@pytest.mark.parametrize(
    ("dataset", "why"),
    [("complete", "nothing was lost"), ("crash", "at most the last second of writes was lost")],
)
def test_complete_or_crash_data_starts_nothing_and_says_why(world: World, logs: Any, dataset: str, why: str) -> None:
    """The host is off every night: a morning boot finds its data complete, and must not start the batch."""
    for now in (MONDAY_10_JST, SATURDAY_10_JST):
        world.now = now
        result = invoke(ready_event(world.ours, dataset, **{"saved-at": "2025-06-01T10:00:00Z"}))
        assert result["action"] == "skipped"
        assert f"dataset {dataset}" in result["reason"] and why in result["reason"] and "no warm-up" in result["reason"]
    assert world.task_arns() == []
    assert world.ecs.run_task_calls == []
    assert world.published() == []
    assert [line for line in logs() if line["level"] == "ERROR"] == []

    # The same boot's empty dataset (were it ever re-announced so) is still warmed up once: nothing was remembered.
    world.now = MONDAY_10_JST
    assert invoke(ready_event(world.ours))["action"] == "started"


def test_foreign_instances_and_stacks_start_nothing(world: World) -> None:
    untagged = world.instance({"Name": "someone-else"})
    for event in (
        ready_event(world.foreign),
        ready_event(untagged),
        ready_event("i-0123456789abcdef0"),  # does not exist
        ready_event(world.ours, stack="production"),
    ):
        assert invoke(event)["action"] == "skipped"
    assert world.task_arns() == []
    assert world.published() == []


@pytest.mark.parametrize(("exit_code", "result"), [(0, "succeeded"), (1, "failed"), (None, "failed")])
def test_a_stopped_task_becomes_warmup_finished(world: World, exit_code: int | None, result: str) -> None:
    task_arn = invoke(ready_event(world.ours))["task_arn"]
    world.published()  # drop "Started"

    stopped = stopped_event(world, task_arn, exit_code, world.ours)
    assert invoke(stopped)["result"] == result
    invoke({**stopped, "id": str(uuid.uuid4())})  # redelivered: said once

    (finished,) = world.published()
    assert finished["detail-type"] == WARMUP_FINISHED.detail_type
    assert finished["detail"] == {
        "task-arn": task_arn,
        "instance-id": world.ours,
        "stack": STACK,
        "result": result,
        "exit-code": exit_code,
        "stopped-reason": "Essential container in task exited",
    }
    assert set(finished["detail"]) <= set(WARMUP_FINISHED.keys)


def test_a_task_stopped_first_in_a_fresh_container_does_not_unguard_the_boot(world: World) -> None:
    # Powertools configures a persistence layer once, from the first call it serves: were both functions to share
    # one, a container whose first event is a stopped task would key boots on "task-arn", which they lack.
    task_arn = f"arn:aws:ecs:{REGION}:123456789012:task/spot-redis-staging/0123456789abcdef"
    assert invoke(stopped_event(world, task_arn, 0, world.ours))["action"] == "finished"
    assert [event["detail-type"] for event in world.published()] == [WARMUP_FINISHED.detail_type]

    first = invoke(ready_event(world.ours))
    again = invoke(ready_event(world.ours))  # redelivered, with another event id

    assert (first["action"], again["action"]) == ("started", "duplicate")
    assert len(world.ecs.run_task_calls) == 1
    assert world.task_arns() == [first["task_arn"]]
    assert [event["detail-type"] for event in world.published()] == [WARMUP_STARTED.detail_type]
    # Each idempotent function keeps its records under its own prefix (and its own persistence layer).
    prefixes = sorted(item["id"]["S"].split("#")[0] for item in world.dynamodb.scan(TableName=world.table)["Items"])
    assert prefixes == ["spot-redis-warmup-finish", "spot-redis-warmup-start"]


def test_a_boot_first_in_a_fresh_container_does_not_unguard_the_task(world: World) -> None:
    task_arn = invoke(ready_event(world.ours))["task_arn"]
    assert [event["detail-type"] for event in world.published()] == [WARMUP_STARTED.detail_type]

    stopped = stopped_event(world, task_arn, 0, world.ours)
    assert invoke(stopped)["action"] == "finished"
    assert invoke({**stopped, "id": str(uuid.uuid4())})["action"] == "finished"  # redelivered
    assert [event["detail-type"] for event in world.published()] == [WARMUP_FINISHED.detail_type]

    # Once per task, not per boot: another task of the same boot (e.g. a rerun) is reported too.
    rerun = f"arn:aws:ecs:{REGION}:123456789012:task/spot-redis-staging/0123456789abcdef"
    assert invoke(stopped_event(world, rerun, 1, world.ours))["result"] == "failed"
    (finished,) = world.published()
    assert finished["detail"]["task-arn"] == rerun


def test_a_retry_after_no_capacity_starts_the_task(world: World) -> None:
    world.ecs = NoCapacityOnceEcs(world.ecs._client)
    event = ready_event(world.ours)

    with pytest.raises(RuntimeError, match="RESOURCE:FARGATE"):
        invoke(event)  # raised: Lambda retries the event
    assert world.task_arns() == []
    assert world.published() == []

    retried = invoke(event)  # the failed attempt's idempotency record does not block the retry

    assert retried["action"] == "started"
    assert len(world.ecs.run_task_calls) == 2
    assert world.task_arns() == [retried["task_arn"]]
    (started,) = world.published()
    assert started["detail-type"] == WARMUP_STARTED.detail_type
    assert started["detail"]["task-arn"] == retried["task_arn"]


def test_other_tasks_are_not_reported(world: World) -> None:
    task_arn = f"arn:aws:ecs:{REGION}:123456789012:task/spot-redis-staging/0123456789abcdef"
    manual = stopped_event(world, task_arn, 0, "ecs-cli/operator")
    other_cluster = stopped_event(world, task_arn, 0, world.ours)
    other_cluster["detail"]["clusterArn"] = f"arn:aws:ecs:{REGION}:123456789012:cluster/other"
    for event in (manual, other_cluster):
        assert invoke(event)["action"] == "skipped"
    assert world.published() == []


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


MALFORMED = {
    "no detail": lambda w: _without(ready_event(w.ours), "detail"),
    "detail is a string": lambda w: {**ready_event(w.ours), "detail": "i-0"},
    "no instance id": lambda w: {**ready_event(w.ours), "detail": {"stack": STACK, "dataset": "empty"}},
    "instance id is a number": lambda w: ready_event(42),
    "dataset partial": lambda w: ready_event(w.ours, "partial"),
    "dataset missing": lambda w: {**ready_event(w.ours), "detail": {"instance-id": w.ours, "stack": STACK}},
    "dataset is a list": lambda w: ready_event(w.ours, ["empty"]),
    "dataset is upper case": lambda w: ready_event(w.ours, "EMPTY"),
    "unknown detail-type": lambda w: ready_event(w.ours, detail_type="Redis Host Exploded"),
    "the old dataset event": lambda w: ready_event(w.ours, detail_type="Redis Dataset Empty"),
    "unknown source": lambda w: {**ready_event(w.ours), "source": "aws.s3"},
    "exit code is text": lambda w: stopped_event(w, "arn:aws:ecs:x:1:task/c/t", "1", w.ours),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_events_are_logged_with_their_id_and_never_raise(world: World, logs: Any, name: str) -> None:
    event = MALFORMED[name](world)
    assert invoke(event)["action"] == "ignored"
    errors = [line for line in logs() if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["event_id"] == event["id"]
    assert event["id"] in errors[0]["message"]
    assert world.task_arns() == []
    assert world.published() == []


@pytest.mark.parametrize("event", [None, "text", [], {"id": "x"}], ids=repr)
def test_events_that_are_not_eventbridge_events_never_raise(world: World, event: Any) -> None:
    assert invoke(event)["action"] == "ignored"


# --- the deployment package -----------------------------------------------------------------------------------------

WORK_HOURS_ZONE = (
    "import sys, zoneinfo\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "zoneinfo.reset_tzpath(to=[])  # a runtime without /usr/share/zoneinfo\n"
    "from warmup_hours import parse_work_hours\n"
    "print(parse_work_hours('Mon-Fri 09:00-19:00 America/Los_Angeles').zone.key)\n"
)


def unpacked_package(folder: Path, without: str | None = None) -> Path:
    """What infra/alerting.py zips for warmup, written out as the Lambda runtime unpacks it."""
    from infra.alerting import lambda_files

    for relative, source in lambda_files(REPO, "warmup").items():
        if without and relative.startswith(f"{without}/"):
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return folder


def run_without_site_packages(code: str, package: Path) -> subprocess.CompletedProcess[str]:
    """Python with neither site-packages (-S: no tzdata from the venv) nor a system time zone database."""
    command = [sys.executable, "-I", "-S", "-c", code, str(package)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)


def test_the_package_knows_time_zones_without_the_runtimes_database(tmp_path: Path) -> None:
    result = run_without_site_packages(WORK_HOURS_ZONE, unpacked_package(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "America/Los_Angeles"


def test_without_the_bundled_tzdata_the_zone_would_be_unknown(tmp_path: Path) -> None:
    """The control: the test above passes because of the bundled package, not because of the machine."""
    result = run_without_site_packages(WORK_HOURS_ZONE, unpacked_package(tmp_path, without="tzdata"))
    assert result.returncode != 0
    assert "unknown time zone 'America/Los_Angeles'" in result.stderr
