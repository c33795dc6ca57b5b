"""The lab's stand-in for EventBridge invoking the Lambdas (lab/event_bus.py): each event from a function's queue is
handed to its handler twice and then deleted; an event the handler raised on stays; RunTask requests are kept; notify
and warmup load side by side in one process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from lab import cloud
from lab.event_bus import DELIVERIES, RUN_TASK_LOG, LambdaContext, RecordingEcs, deliver, handlers
from spot_redis.events import HOST_READY
from tests.unit import lambda_support as support

REGION = "ap-northeast-1"


@pytest.fixture
def sqs() -> Iterator[Any]:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    with mock.patch.dict("os.environ", env), mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def queue_with(sqs, *events: dict[str, Any]) -> str:
    """A queue whose messages are visible again at once when not deleted (VisibilityTimeout 0), holding `events`."""
    url = sqs.create_queue(QueueName="lab-notify", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    for event in events:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    return url


def waiting(sqs, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def event(n: int) -> dict[str, Any]:
    return {"id": f"event-{n}", "detail-type": "Spot Interruption", "detail": {"n": n}}


def test_each_event_is_handed_to_the_handler_twice_then_deleted(sqs):
    url = queue_with(sqs, event(1), event(2))
    calls = []

    def handler(received, context):
        calls.append((received["id"], context.function_name))
        return "ok"

    assert deliver(sqs, "notify", url, handler) == 2
    assert DELIVERIES == 2
    function = f"spot-redis-{cloud.STACK}-notify"
    assert sorted(calls) == [("event-1", function)] * 2 + [("event-2", function)] * 2
    assert calls[0] == calls[1]  # one event's deliveries, one after the other
    assert waiting(sqs, url) == []
    assert deliver(sqs, "notify", url, handler) == 0


def test_an_event_the_handler_raised_on_stays_in_the_queue_and_comes_again(sqs, capsys):
    url = queue_with(sqs, event(1))

    def failing(received, context):
        raise RuntimeError("Slack is down")

    deliver(sqs, "notify", url, failing)
    assert "notify failed on 'Spot Interruption'" in capsys.readouterr().out
    assert waiting(sqs, url) == [event(1)]  # visible again at once (VisibilityTimeout 0)

    handled = []
    deliver(sqs, "notify", url, lambda received, context: handled.append(received))
    assert handled == [event(1)] * DELIVERIES
    assert waiting(sqs, url) == []


def test_an_event_is_kept_when_only_its_second_delivery_fails(sqs):
    url = queue_with(sqs, event(1))
    calls = []

    def fails_on_the_duplicate(received, context):
        calls.append(received)
        if len(calls) == 2:
            raise RuntimeError("not idempotent")

    deliver(sqs, "notify", url, fails_on_the_duplicate)
    assert waiting(sqs, url) == [event(1)]


class FakeEcs:
    def __init__(self):
        self.requests = []

    def run_task(self, **request):
        self.requests.append(request)
        return {"tasks": [{"taskArn": f"arn:task/{len(self.requests)}"}], "failures": []}

    def describe_tasks(self, **request):
        return {"tasks": [], "asked": request}


def test_recording_ecs_appends_each_run_task_request_as_a_json_line_and_forwards_it(tmp_path: Path):
    log = tmp_path / RUN_TASK_LOG
    log.write_text('{"earlier": true}\n')
    ecs = FakeEcs()
    recording = RecordingEcs(ecs, log)
    first = {"cluster": "warmup", "taskDefinition": "warmup:1", "count": 1}
    second = {
        "cluster": "warmup",
        "taskDefinition": "warmup:1",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}},
    }
    assert recording.run_task(**first) == {"tasks": [{"taskArn": "arn:task/1"}], "failures": []}
    assert recording.run_task(**second)["tasks"] == [{"taskArn": "arn:task/2"}]
    assert ecs.requests == [first, second]
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"earlier": True}, first, second]
    assert recording.describe_tasks(cluster="warmup") == {"tasks": [], "asked": {"cluster": "warmup"}}


def warmup_environment() -> dict[str, str]:
    """What lab/cloud.py's seed gives the functions, in moto: the stack's table, cluster and warm-up task."""
    ecs = support.client("ecs")
    cluster = ecs.create_cluster(clusterName="spot-redis-staging")["cluster"]["clusterArn"]
    task_definition = ecs.register_task_definition(
        family="spot-redis-staging-warmup",
        networkMode="bridge",  # as lab/cloud.py registers it: moto 5.2.5 cannot make an awsvpc task's interface
        containerDefinitions=[{"name": "warmup", "image": "warmup:latest", "essential": True, "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    return {
        "STACK_NAME": support.STACK,
        "IDEMPOTENCY_TABLE": support.make_idempotency_table(),
        "CLUSTER_ARN": cluster,
        "TASK_DEFINITION_ARN": task_definition,
        "SUBNET_IDS": "subnet-0a1b2c3d4e5f60001",
        "SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60001",
        "ASSIGN_PUBLIC_IP": "ENABLED",
        "WORK_HOURS": "",
    }


def host_ready_empty(instance_id: str) -> dict[str, Any]:
    detail = {"instance-id": instance_id, "stack": support.STACK, "dataset": "empty"}
    return support.custom_event(HOST_READY, detail)


def test_both_functions_load_side_by_side_and_run_task_is_recorded(tmp_path: Path, monkeypatch: Any) -> None:
    with support.aws():
        for name, value in warmup_environment().items():
            monkeypatch.setenv(name, value)
        functions = handlers(tmp_path)
        assert set(functions) == {"notify", "warmup"}
        assert functions["notify"].__module__ != functions["warmup"].__module__

        result = functions["warmup"](host_ready_empty(support.run_instance()), LambdaContext("spot-redis-warmup"))

    assert result["action"] == "started", result
    [request] = [json.loads(line) for line in (tmp_path / RUN_TASK_LOG).read_text().splitlines()]
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-0a1b2c3d4e5f60001"],
        "securityGroups": ["sg-0a1b2c3d4e5f60001"],
        "assignPublicIp": "ENABLED",
    }
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
