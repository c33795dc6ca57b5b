"""spot-redis warmup: its request reaches EventBridge as the contract says, the warmup Lambda starts the task once
per request (a redelivery starts nothing), and notify tells Slack who asked."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from spot_redis.cli import main
from spot_redis.cli.context import Stack
from spot_redis.events import SOURCE, WARMUP_REQUESTED, WARMUP_STARTED
from tests.unit import lambda_support as support
from tests.unit.lambdas.test_contract import WarmupWorld, as_delivered, env, warmup_world  # noqa: F401 - fixtures

NOW = datetime.datetime(2026, 12, 7, 1, 0, tzinfo=datetime.UTC)


class Session:
    """The CLI's boto3 session, in the tests' moto, with the EventBridge client that records PutEvents."""

    def __init__(self, events: support.RecordingEvents) -> None:
        self.events = events

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self.events if service == "events" else support.client(service)


def request_warmup(world: WarmupWorld, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    instance = support.run_instance()
    group = support.client("autoscaling")
    support.make_group(desired=0)
    group.attach_instances(InstanceIds=[instance], AutoScalingGroupName=support.GROUP)
    recorder = support.RecordingEvents(support.client("events"))
    outputs = {"asgName": support.GROUP, "dataVolumeId": "vol-0", "clusterName": world.cluster}
    stack = Stack(support.STACK, outputs, {}, support.REGION, session=Session(recorder))
    tools = main.Tools(now=lambda: NOW)
    assert main.main(["warmup", "--reason", "new fixtures"], tools=tools, loader=lambda args: stack) == 0
    assert "warm-up requested for " + instance in capsys.readouterr().out
    [sent] = recorder.entries
    return instance, sent


def test_the_request_reaches_eventbridge_and_warmup_starts_once(
    env: support.NotifyEnv,  # noqa: F811
    warmup_world: WarmupWorld,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    instance, sent = request_warmup(warmup_world, capsys)
    assert sent["Source"] == SOURCE and sent["DetailType"] == WARMUP_REQUESTED.detail_type
    detail = json.loads(sent["Detail"])
    assert detail["instance-id"] == instance and detail["stack"] == support.STACK
    assert detail["reason"] == "new fixtures" and detail["requested-by"].startswith("arn:aws:")
    assert detail["requested-at"] == "2026-12-07T01:00:00Z"

    event = as_delivered(sent)
    started = warmup_world.handle(event)
    assert started["action"] == "started", started
    again = warmup_world.handle({**event, "id": "redelivered"})
    assert again["action"] == "duplicate" and again["task_arn"] == started["task_arn"]
    [announced] = warmup_world.events.entries  # announced once, as the automatic start is
    assert announced["DetailType"] == WARMUP_STARTED.detail_type
    assert json.loads(announced["Detail"])["trigger"] == WARMUP_REQUESTED.detail_type


def test_notify_says_who_asked(
    env: support.NotifyEnv,  # noqa: F811
    warmup_world: WarmupWorld,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    instance, sent = request_warmup(warmup_world, capsys)
    assert env.run(as_delivered(sent))["status"] == "delivered"
    [post] = env.slack.posts
    assert instance in post["text"] and "new fixtures" in post["text"] and "requested" in post["text"]
