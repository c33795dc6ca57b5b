"""Unit tests for infra/event_patterns.py: each pattern, on an EventBridge rule in moto, matches its events only.

moto has no TestEventPattern and cannot invoke a Lambda target, so each test puts one rule with an SQS queue as
its target, puts one event, and counts what the queue received: one message for a match, none otherwise.
moto's pattern engine (moto/events/models.py EventPattern) supports exact values, lists, prefix, suffix,
anything-but, exists, numeric, cidr, wildcard and $or; it treats an operator it does not know as a match, so the
sanity table below proves the operators these patterns use really filter. Unlike AWS, moto accepts put_events with
an "aws.*" source, which is what lets these tests replay AWS service events.
"""

import itertools
import json
import os
from functools import partial
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra.event_patterns import (
    NOTIFIED_INSTANCE_STATES,
    alarm_raised,
    dataset_events,
    dlm_policy_errors,
    instance_state_changes,
    instances_terminated,
    launch_failures,
    snapshot_failures,
    spot_warnings,
    stack_events,
    task_definition_prefix,
    warmup_task_stopped,
)
from spot_redis.events import ALL_EVENTS, HOST_DRAINED, HOST_READY, SOURCE, WARMUP_FINISHED, Dataset

REPO = Path(__file__).resolve().parents[3]
COMMITTED_EVENTS = Path(__file__).resolve().parents[1] / "events"
OWN_EVENTS = COMMITTED_EVENTS / "own"  # shapes the upstream samples lack, written from AWS's documentation

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
STACK = "staging"
ASG_NAME = "spot-redis-staging"
POLICY_ARN = f"arn:aws:dlm:{REGION}:{ACCOUNT}:policy/policy-0123456789abcdef0"
OTHER_POLICY_ARN = f"arn:aws:dlm:{REGION}:{ACCOUNT}:policy/policy-0fedcba9876543210"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/spot-redis-staging"
WARMUP_FAMILY = "spot-redis-staging-warmup"
INSTANCE_ID = "i-1234567890abcdef0"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:spot-redis-staging-failed-events-waiting"


def upstream_events_dir() -> Path | None:
    """A folder of the upstream event samples the committed ones were copied from, when $SPOT_REDIS_EVENTS_DIR names
    one: the copies must not drift from them."""
    folder = os.environ.get("SPOT_REDIS_EVENTS_DIR")
    return Path(folder) if folder else None


# --- events ------------------------------------------------------------------------------------------------------


def sample(name: str) -> dict:
    return json.loads((COMMITTED_EVENTS / f"{name}.json").read_text())


def replaced(event: dict, key: str, value) -> dict:
    return {**event, key: value}


def with_detail(event: dict, /, **changes) -> dict:
    return {**event, "detail": {**event["detail"], **changes}}


def without_detail(event: dict, key: str) -> dict:
    return {**event, "detail": {k: v for k, v in event["detail"].items() if k != key}}


def custom_event(detail_type: str, stack: str = STACK, **detail) -> dict:
    return {
        "source": SOURCE,
        "detail-type": detail_type,
        "resources": [],
        "detail": {"instance-id": INSTANCE_ID, "stack": stack, **detail},
    }


def host_ready(dataset: str | None, stack: str = STACK) -> dict:
    return custom_event(HOST_READY.detail_type, stack, **({} if dataset is None else {"dataset": dataset}))


def task_definition_arn(family: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:ecs:{REGION}:{account}:task-definition/{family}:7"


WARMUP_TASK_STOPPED = {
    "source": "aws.ecs",
    "detail-type": "ECS Task State Change",
    "resources": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/spot-redis-staging/0123456789abcdef0123456789abcdef"],
    "detail": {
        "clusterArn": CLUSTER_ARN,
        "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/spot-redis-staging/0123456789abcdef0123456789abcdef",
        "taskDefinitionArn": task_definition_arn(WARMUP_FAMILY),
        "group": f"family:{WARMUP_FAMILY}",
        "launchType": "FARGATE",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "containers": [{"name": "warmup", "exitCode": 0, "lastStatus": "STOPPED"}],
    },
}

SPOT_WARNING = sample("ec2-spot-interruption-warning")
STATE_CHANGE = sample("ec2-state-change-stopping")
LAUNCH_FAILURE = sample("autoscaling-launch-unsuccessful")
SNAPSHOT_FAILURE = sample("ebs-snapshot-failed")
DLM_ERROR = sample("dlm-policy-state-error")
ALARM_RAISED = json.loads((OWN_EVENTS / "cloudwatch-alarm-failed-events.json").read_text())
NO_SPOT_CAPACITY = json.loads((OWN_EVENTS / "autoscaling-launch-unsuccessful-no-spot-capacity.json").read_text())
TERMINATED = json.loads((OWN_EVENTS / "autoscaling-terminate-successful.json").read_text())


# --- moto --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws():
    """One moto account for the module, with fake credentials: (events client, sqs client)."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("AWS_PROFILE", raising=False)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(name, "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        with mock_aws():
            yield boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)


@pytest.fixture
def deliver(aws):
    """deliver(pattern, event) -> the events a rule with this pattern delivered to its own, new queue."""
    events, sqs = aws
    queue_url = sqs.create_queue(QueueName=f"rule-target-{next(_queue_numbers)}")["QueueUrl"]
    yield partial(_deliver, events, sqs, queue_url)
    _delete_rules(events)
    sqs.delete_queue(QueueUrl=queue_url)


_queue_numbers = itertools.count()


def _deliver(events, sqs, queue_url: str, pattern: dict, event: dict) -> list[dict]:
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="rule-under-test", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="rule-under-test", Targets=[{"Id": "queue", "Arn": queue_arn}])
    result = events.put_events(Entries=[_entry(event)])
    assert result["FailedEntryCount"] == 0, result["Entries"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def _delete_rules(events) -> None:
    """Leave the bus empty, so the next test's event meets only its own rule."""
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        if targets:
            events.remove_targets(Rule=rule["Name"], Ids=[target["Id"] for target in targets])
        events.delete_rule(Name=rule["Name"])


def _entry(event: dict) -> dict:
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
    }


def assert_delivered_once(delivered: list[dict], event: dict) -> None:
    assert [(d["source"], d["detail-type"], d["detail"]) for d in delivered] == [
        (event["source"], event["detail-type"], event["detail"])
    ]


# --- moto's pattern engine filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, delivered_count",
    [
        pytest.param({"source": ["aws.ec2"]}, 1, id="exact-match"),
        pytest.param({"source": ["aws.autoscaling"]}, 0, id="exact-mismatch"),
        pytest.param({"detail": {"absent": ["x"]}}, 0, id="missing-field"),
        pytest.param({"detail": {"instance-id": [{"prefix": "i-1234"}]}}, 1, id="prefix-match"),
        pytest.param({"detail": {"instance-id": [{"prefix": "i-9"}]}}, 0, id="prefix-mismatch"),
        pytest.param({"resources": [SPOT_WARNING["resources"][0]]}, 1, id="resources-element-match"),
        pytest.param({"resources": ["arn:aws:ec2:ap-northeast-1a:instance/i-0"]}, 0, id="resources-mismatch"),
    ],
)
def test_moto_filters_by_pattern(deliver, pattern, delivered_count):
    assert len(deliver(pattern, SPOT_WARNING)) == delivered_count


# --- samples -----------------------------------------------------------------------------------------------------

RULE_OF_SAMPLE = {
    "ec2-spot-interruption-warning": spot_warnings(),
    "ec2-rebalance-recommendation": spot_warnings(),
    "ec2-state-change-stopping": instance_state_changes(),
    "autoscaling-launch-unsuccessful": launch_failures(ASG_NAME),
    "ebs-snapshot-failed": snapshot_failures(),
    "dlm-policy-state-error": dlm_policy_errors(POLICY_ARN),
}


@pytest.mark.parametrize("name", sorted(RULE_OF_SAMPLE))
def test_sample_matches_its_rule(deliver, name):
    assert_delivered_once(deliver(RULE_OF_SAMPLE[name], sample(name)), sample(name))


def test_every_committed_sample_has_a_rule():
    assert sorted(path.stem for path in COMMITTED_EVENTS.glob("*.json")) == sorted(RULE_OF_SAMPLE)


def test_committed_samples_equal_the_upstream_samples():
    upstream = upstream_events_dir()
    if upstream is None:
        pytest.skip("no upstream samples to compare with (set SPOT_REDIS_EVENTS_DIR)")
    upstream_files = {path.name: path.read_bytes() for path in upstream.glob("*.json")}
    committed_files = {path.name: path.read_bytes() for path in COMMITTED_EVENTS.glob("*.json")}
    assert committed_files == upstream_files


# --- events of our own that match --------------------------------------------------------------------------------

MATCHES = [
    *(
        pytest.param(instance_state_changes(), with_detail(STATE_CHANGE, state=state), id=f"state-{state}")
        for state in NOTIFIED_INSTANCE_STATES
    ),
    pytest.param(snapshot_failures(), with_detail(SNAPSHOT_FAILURE, event="copySnapshot"), id="copy-snapshot-failed"),
    pytest.param(
        dlm_policy_errors(POLICY_ARN), without_detail(DLM_ERROR, "policy_id"), id="dlm-error-without-policy-id"
    ),
    *(
        pytest.param(stack_events(STACK), custom_event(detail_type), id=f"stack-{detail_type}")
        for detail_type in (*(kind.detail_type for kind in ALL_EVENTS), "Redis Anything New")
    ),
    *(
        pytest.param(stack_events(STACK), host_ready(dataset), id=f"stack-ready-{dataset}")
        for dataset in ("complete", "crash", "empty")
    ),
    pytest.param(dataset_events(STACK), host_ready("empty"), id="dataset-empty"),
    pytest.param(warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY), WARMUP_TASK_STOPPED, id="warmup-task-stopped"),
    pytest.param(alarm_raised(ALARM_ARN), ALARM_RAISED, id="failed-events-alarm"),
    pytest.param(launch_failures(ASG_NAME), NO_SPOT_CAPACITY, id="launch-failure-no-spot-capacity"),
    pytest.param(instances_terminated(ASG_NAME), TERMINATED, id="terminated-at-the-scheduled-stop"),
    pytest.param(
        instances_terminated(ASG_NAME),
        with_detail(
            TERMINATED,
            Cause="At 2026-11-23T03:00:00Z an instance was taken out of service in response to an "
            "EC2 health check indicating it has been terminated or stopped.",
        ),
        id="terminated-as-unhealthy",
    ),
    pytest.param(
        warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY),
        with_detail(WARMUP_TASK_STOPPED, stopCode="SpotInterruption", desiredStatus="STOPPED"),
        id="warmup-task-interrupted",
    ),
]


@pytest.mark.parametrize("pattern, event", MATCHES)
def test_event_matches_rule(deliver, pattern, event):
    assert_delivered_once(deliver(pattern, event), event)


# --- near misses -------------------------------------------------------------------------------------------------

NEAR_MISSES = [
    pytest.param(spot_warnings(), replaced(SPOT_WARNING, "source", "aws.ec2.fake"), id="spot-warning-other-source"),
    pytest.param(spot_warnings(), STATE_CHANGE, id="spot-warning-other-detail-type"),
    pytest.param(instance_state_changes(), with_detail(STATE_CHANGE, state="pending"), id="state-pending"),
    pytest.param(instance_state_changes(), SPOT_WARNING, id="state-other-detail-type"),
    pytest.param(instance_state_changes(), replaced(STATE_CHANGE, "source", SOURCE), id="state-other-source"),
    pytest.param(
        launch_failures(ASG_NAME),
        with_detail(LAUNCH_FAILURE, AutoScalingGroupName="spot-redis-production"),
        id="launch-failure-other-asg",
    ),
    pytest.param(
        launch_failures(ASG_NAME),
        replaced(LAUNCH_FAILURE, "detail-type", "EC2 Instance Launch Successful"),
        id="launch-successful",
    ),
    pytest.param(snapshot_failures(), with_detail(SNAPSHOT_FAILURE, result="succeeded"), id="snapshot-succeeded"),
    pytest.param(
        snapshot_failures(),
        with_detail(SNAPSHOT_FAILURE, event="copySnapshot", result="succeeded"),
        id="copy-snapshot-succeeded",
    ),
    pytest.param(
        instances_terminated(ASG_NAME),
        with_detail(TERMINATED, AutoScalingGroupName="spot-redis-production"),
        id="terminated-other-asg",
    ),
    pytest.param(
        instances_terminated(ASG_NAME),
        replaced(TERMINATED, "detail-type", "EC2 Instance Terminate Unsuccessful"),
        id="terminate-unsuccessful",
    ),
    pytest.param(instances_terminated(ASG_NAME), LAUNCH_FAILURE, id="terminated-not-a-launch-failure"),
    pytest.param(launch_failures(ASG_NAME), TERMINATED, id="launch-failure-not-a-termination"),
    pytest.param(dlm_policy_errors(POLICY_ARN), with_detail(DLM_ERROR, state="ENABLED"), id="dlm-enabled"),
    pytest.param(
        dlm_policy_errors(POLICY_ARN),
        with_detail(replaced(DLM_ERROR, "resources", [OTHER_POLICY_ARN]), policy_id=OTHER_POLICY_ARN),
        id="dlm-other-policy",
    ),
    pytest.param(dlm_policy_errors(POLICY_ARN), replaced(DLM_ERROR, "source", "aws.ec2"), id="dlm-other-source"),
    pytest.param(stack_events(STACK), host_ready("empty", stack="production"), id="stack-other-stack"),
    pytest.param(stack_events(STACK), without_detail(host_ready("empty"), "stack"), id="stack-missing"),
    pytest.param(stack_events(STACK), replaced(host_ready("empty"), "source", "aws.ec2"), id="stack-aws-source"),
    pytest.param(
        stack_events(STACK),
        replaced(host_ready("empty"), "source", f"{SOURCE}.fake"),
        id="stack-other-custom-source",
    ),
    # The host is off every night: a morning boot with its data complete (or after a crash) must not warm up.
    pytest.param(dataset_events(STACK), host_ready("complete"), id="dataset-complete"),
    pytest.param(dataset_events(STACK), host_ready("crash"), id="dataset-crash"),
    pytest.param(dataset_events(STACK), host_ready(None), id="dataset-missing"),
    pytest.param(dataset_events(STACK), host_ready("EMPTY"), id="dataset-upper-case"),
    pytest.param(dataset_events(STACK), host_ready("empty", stack="production"), id="dataset-other-stack"),
    pytest.param(
        dataset_events(STACK), custom_event(HOST_DRAINED.detail_type, dataset="empty"), id="dataset-host-drained"
    ),
    pytest.param(dataset_events(STACK), custom_event(WARMUP_FINISHED.detail_type), id="dataset-warmup-finished"),
    pytest.param(dataset_events(STACK), custom_event("Redis Dataset Empty"), id="dataset-the-old-empty-event"),
    pytest.param(
        warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY),
        with_detail(WARMUP_TASK_STOPPED, clusterArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/other"),
        id="warmup-other-cluster",
    ),
    pytest.param(
        warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY),
        with_detail(WARMUP_TASK_STOPPED, taskDefinitionArn=task_definition_arn("app-migrate")),
        id="warmup-other-family",
    ),
    pytest.param(
        warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY),
        with_detail(WARMUP_TASK_STOPPED, taskDefinitionArn=task_definition_arn(f"{WARMUP_FAMILY}-v2")),
        id="warmup-family-with-same-prefix",
    ),
    pytest.param(
        warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY),
        with_detail(WARMUP_TASK_STOPPED, taskDefinitionArn=task_definition_arn(WARMUP_FAMILY, "210987654321")),
        id="warmup-family-in-other-account",
    ),
    pytest.param(
        warmup_task_stopped(CLUSTER_ARN, WARMUP_FAMILY),
        with_detail(WARMUP_TASK_STOPPED, lastStatus="RUNNING", desiredStatus="RUNNING"),
        id="warmup-running",
    ),
    pytest.param(
        alarm_raised(ALARM_ARN),
        with_detail(ALARM_RAISED, state={**ALARM_RAISED["detail"]["state"], "value": "OK"}),
        id="alarm-back-to-ok",
    ),
    pytest.param(
        alarm_raised(ALARM_ARN),
        replaced(ALARM_RAISED, "resources", [ALARM_ARN.replace("staging", "production")]),
        id="alarm-of-another-stack",
    ),
    pytest.param(alarm_raised(ALARM_ARN), replaced(ALARM_RAISED, "source", SOURCE), id="alarm-other-source"),
]


@pytest.mark.parametrize("pattern, event", NEAR_MISSES)
def test_near_miss_is_not_delivered(deliver, pattern, event):
    assert deliver(pattern, event) == []


# --- arguments ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cluster_arn, prefix",
    [
        pytest.param(CLUSTER_ARN, f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{WARMUP_FAMILY}:", id="aws"),
        pytest.param(
            "arn:aws-cn:ecs:cn-north-1:123456789012:cluster/c",
            f"arn:aws-cn:ecs:cn-north-1:123456789012:task-definition/{WARMUP_FAMILY}:",
            id="aws-cn",
        ),
    ],
)
def test_task_definition_prefix_follows_the_cluster(cluster_arn, prefix):
    assert task_definition_prefix(cluster_arn, WARMUP_FAMILY) == prefix


@pytest.mark.parametrize(
    "build, args",
    [
        pytest.param(launch_failures, ("",), id="blank-asg"),
        pytest.param(instances_terminated, (" ",), id="blank-terminated-asg"),
        pytest.param(dlm_policy_errors, (" ",), id="blank-policy"),
        pytest.param(alarm_raised, ("",), id="blank-alarm"),
        pytest.param(stack_events, ("",), id="blank-stack"),
        pytest.param(dataset_events, ("",), id="blank-dataset-stack"),
        pytest.param(warmup_task_stopped, ("spot-redis-staging", WARMUP_FAMILY), id="cluster-name-not-arn"),
        pytest.param(
            warmup_task_stopped, (f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/c/s", WARMUP_FAMILY), id="service-arn"
        ),
        pytest.param(warmup_task_stopped, (CLUSTER_ARN, ""), id="blank-family"),
        pytest.param(warmup_task_stopped, (CLUSTER_ARN, f"{WARMUP_FAMILY}:3"), id="family-with-revision"),
    ],
)
def test_invalid_argument_is_rejected(build, args):
    with pytest.raises(ValueError, match=r"ARN|family|empty"):
        build(*args)


def test_the_warmup_pattern_is_the_contracts():
    """The warmup rule lets through HOST_READY with a dataset of WARMUP_DATASETS only (the Lambda checks again)."""
    pattern = dataset_events(STACK)
    assert pattern["source"] == [SOURCE]
    assert pattern["detail-type"] == [HOST_READY.detail_type]
    assert pattern["detail"]["dataset"] == [Dataset.EMPTY.value]
    assert "dataset" in HOST_READY.required
