"""lambdas/notify with moto (DynamoDB, SSM, SNS, SQS, EC2) and a local Slack stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from spot_redis.events import (
    BOOTSTRAP_FAILED,
    HOST_DRAINED,
    HOST_READY,
    REBALANCE_SEEN,
    WARMUP_FINISHED,
    WARMUP_STARTED,
)
from tests.unit import lambda_support as support

app = support.load_lambda("notify")

from common.runtime import clock  # noqa: E402 - lambdas/ is on sys.path once lambda_support is imported

PARAM = support.NOTIFY_PARAM
NOW = datetime(2026, 11, 20, 5, 13, 0, tzinfo=UTC)  # 20 s after the sample Spot warning's time


Env = support.NotifyEnv


@pytest.fixture
def slack_script() -> list[int | str]:
    return [200]


@pytest.fixture
def env(slack_script: list[int | str]) -> Iterator[Env]:
    with support.notify_env(app, slack_script, now=NOW) as env:
        yield env


def spot_warning(instance_id: str, event_id: str = "12345678-1234-1234-1234-123456789012") -> dict[str, Any]:
    return support.load_event("ec2-spot-interruption-warning", id=event_id, detail={"instance-id": instance_id})


def only_post(env: Env) -> dict[str, Any]:
    assert len(env.slack.posts) == 1, env.slack.posts
    post = env.slack.posts[0]
    assert isinstance(post["text"], str) and post["text"]
    assert isinstance(post["blocks"], list) and post["blocks"][0]["type"] == "header"
    return post


# --- one message per event type -------------------------------------------------------------------------------


def test_spot_warning_says_instance_time_left_and_next_step(env: Env) -> None:
    instance = support.run_instance()
    result = env.run(spot_warning(instance))
    assert result["status"] == "delivered" and result["channel"] == "slack"
    text = only_post(env)["text"]
    assert instance in text
    assert "1 min 40 s" in text  # warning at 05:12:40, reclaimed at 05:14:40, now 05:13:00
    assert "replacement" in text and "re-attaches the same volume" in text
    # What protects the data: the host's own drain within the notice, then the replacement's Redis Host Ready.
    assert "drains it within the notice" in text and "leaves the Auto Scaling group" in text
    assert "detaches the data volume" in text and "Redis Host Ready" in text
    assert "Dataset" not in text


def test_spot_warning_arriving_late_says_so(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "fixed", datetime(2026, 11, 20, 5, 20, tzinfo=UTC))
    instance = support.run_instance()
    env.run(spot_warning(instance))
    assert "arrived late" in only_post(env)["text"]


def test_rebalance_recommendation(env: Env) -> None:
    instance = support.run_instance()
    env.run(support.load_event("ec2-rebalance-recommendation", detail={"instance-id": instance}))
    text = only_post(env)["text"]
    assert instance in text and "rebalance" in text.lower() and "keeps running" in text
    assert "does not replace it" in text and "drains it within the notice" in text and "Redis Host Ready" in text


def test_state_change_without_spot_warning_is_a_scheduled_stop(env: Env) -> None:
    instance = support.run_instance()
    env.run(support.load_event("ec2-state-change-stopping", detail={"instance-id": instance}))
    text = only_post(env)["text"]
    assert instance in text and "scheduled stop" in text and "Spot interruption" not in text
    assert "next start of working hours" in text


def test_state_change_after_spot_warning_is_a_spot_termination(env: Env) -> None:
    instance = support.run_instance()
    env.run(spot_warning(instance))
    env.run(support.load_event("ec2-state-change-stopping", detail={"instance-id": instance}))
    assert len(env.slack.posts) == 2
    text = env.slack.posts[1]["text"]
    assert instance in text and "Spot interruption" in text and "replacement" in text
    assert "drained it" in text and "detached the data volume" in text and "Redis Host Ready" in text


def test_state_change_with_spot_state_reason_is_a_spot_termination(env: Env) -> None:
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    instance = support.run_instance()
    moto_instance = ec2_backends[support.ACCOUNT][support.REGION].get_instance(instance)
    moto_instance.state_reason = StateReason("Server.SpotInstanceTermination", "Server.SpotInstanceTermination")
    env.run(support.load_event("ec2-state-change-stopping", detail={"instance-id": instance, "state": "terminated"}))
    assert "Spot interruption" in only_post(env)["text"]


def test_shutting_down_then_terminated_is_one_message(env: Env) -> None:
    instance = support.run_instance()
    env.run(support.load_event("ec2-state-change-stopping", detail={"instance-id": instance}))
    env.run(
        support.load_event(
            "ec2-state-change-stopping", id="other-id", detail={"instance-id": instance, "state": "terminated"}
        )
    )
    assert len(env.slack.posts) == 1


def test_running_says_the_host_is_up(env: Env) -> None:
    instance = support.run_instance()
    env.run(support.load_event("ec2-state-change-stopping", detail={"instance-id": instance, "state": "running"}))
    text = only_post(env)["text"]
    assert instance in text and "is running" in text and "Redis Host Ready" in text


def test_launch_failure_says_no_spot_capacity(env: Env) -> None:
    env.run(support.load_event("autoscaling-launch-unsuccessful"))
    text = only_post(env)["text"]
    assert "No Spot capacity in ap-northeast-1a" in text
    assert "spot-redis-staging" in text and "There is no Spot capacity available" in text
    assert "keeps retrying" in text


def test_snapshot_failure_of_our_volume(env: Env) -> None:
    volume = support.make_volume()
    source = f"arn:aws:ec2::ap-northeast-1:volume/{volume}"
    env.run(support.load_event("ebs-snapshot-failed", detail={"source": source}))
    text = only_post(env)["text"]
    assert volume in text and "Source volume not found" in text and "next scheduled snapshot" in text


def test_failed_events_alarm_says_how_many_wait_and_where(env: Env) -> None:
    alarm = support.make_alarm("spot-redis-staging-failed-events-waiting")
    assert env.run(support.alarm_event(alarm))["kind"] == "failed-events"
    text = only_post(env)["text"]
    assert text.startswith("2 events the spot-redis Lambdas could not handle are waiting")
    assert "spot-redis-staging-failed-events-waiting" in text and "failedEventsQueueUrl" in text


def test_failed_events_alarm_once_per_episode(env: Env) -> None:
    alarm = support.make_alarm("spot-redis-staging-failed-events-waiting")
    env.run(support.alarm_event(alarm))
    env.run(support.alarm_event(alarm) | {"id": "another-delivery-of-the-same-change"})
    assert len(env.slack.posts) == 1
    env.run(support.alarm_event(alarm, timestamp="2026-11-20T09:40:00.000+0000"))  # it went OK, then off again
    assert len(env.slack.posts) == 2


@pytest.mark.parametrize("stack", [None, "production"])
def test_alarm_of_another_stack_is_ignored(env: Env, stack: str | None) -> None:
    alarm = support.make_alarm(f"spot-redis-{stack}-failed-events-waiting", stack=stack)
    assert env.run(support.alarm_event(alarm))["status"] == "ignored"
    assert env.slack.posts == []


class FailingAlarmTags:
    """A CloudWatch client whose ListTagsForResource answers with an error ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def list_tags_for_resource(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "ListTagsForResource")  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "ResourceNotFound"])
def test_deleted_alarm_is_ignored(env: Env, code: str) -> None:
    """moto lists no tags for an unknown alarm; CloudWatch answers ResourceNotFoundException."""
    app.clients.set("cloudwatch", FailingAlarmTags(code))
    missing = f"arn:aws:cloudwatch:{support.REGION}:{support.ACCOUNT}:alarm:spot-redis-staging-gone"
    assert env.run(support.alarm_event(missing))["status"] == "ignored"


def test_other_errors_reading_alarm_tags_are_retried(env: Env) -> None:
    app.clients.set("cloudwatch", FailingAlarmTags("ThrottlingException"))
    alarm = f"arn:aws:cloudwatch:{support.REGION}:{support.ACCOUNT}:alarm:spot-redis-staging-failed-events-waiting"
    with pytest.raises(ClientError):
        env.run(support.alarm_event(alarm))


@pytest.mark.parametrize(
    "reason_data, title",
    [
        ('{"recentDatapoints": [1.0]}', "1 event the spot-redis Lambdas could not handle is waiting"),
        ('{"recentDatapoints": [3.0, 5.0, 4.0]}', "5 events the spot-redis Lambdas could not handle are waiting"),
        ('{"recentDatapoints": []}', "Events the spot-redis Lambdas could not handle are waiting"),
        ("not json", "Events the spot-redis Lambdas could not handle are waiting"),
        ('{"recentDatapoints": [1e400]}', "Events the spot-redis Lambdas could not handle are waiting"),
        (None, "Events the spot-redis Lambdas could not handle are waiting"),
    ],
)
def test_failed_events_title_counts_what_waits(env: Env, reason_data: str | None, title: str) -> None:
    alarm = support.make_alarm("spot-redis-staging-failed-events-waiting")
    env.run(support.alarm_event(alarm, reasonData=reason_data))
    assert only_post(env)["text"].split("\n")[0] == title


def test_alarm_back_to_ok_is_ignored(env: Env) -> None:
    alarm = support.make_alarm("spot-redis-staging-failed-events-waiting")
    assert env.run(support.alarm_event(alarm, value="OK"))["status"] == "ignored"
    assert env.slack.posts == []


def test_snapshot_failure_of_a_foreign_volume_is_ignored(env: Env) -> None:
    volume = support.make_volume(stack=None)
    source = f"arn:aws:ec2::ap-northeast-1:volume/{volume}"
    assert env.run(support.load_event("ebs-snapshot-failed", detail={"source": source}))["status"] == "ignored"
    other = support.make_volume(stack="production")
    source = f"arn:aws:ec2::ap-northeast-1:volume/{other}"
    assert env.run(support.load_event("ebs-snapshot-failed", detail={"source": source}))["status"] == "ignored"
    assert env.slack.posts == []


def test_dlm_policy_error(env: Env) -> None:
    env.run(support.load_event("dlm-policy-state-error"))
    text = only_post(env)["text"]
    assert "policy-0123456789abcdef0" in text and "ERROR" in text and "sufficient permissions" in text
    assert "pulumi up" in text


TASK_ARN = "arn:aws:ecs:ap-northeast-1:123456789012:task/c/abc"
DRAIN_STEPS = {"leave_group": 0.4, "deregister": 0.3, "pause_writes": 0.01, "save": 1.2, "stop_redis": 0.8,
               "mark_clean": 0.01, "unmount": 0.2, "detach_volume": 6.5}  # fmt: skip
DRAINED = {
    "notice-time": "2026-11-20T05:14:40Z",
    "steps": DRAIN_STEPS,
    "failed-steps": [],
    "keys": 12345,
    "saved-at": "2026-11-20T05:12:51Z",
    "drain-seconds": 9.4,
    "volume-id": "vol-0123456789abcdef0",
}


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        pytest.param(
            HOST_READY,
            {"dataset": "complete", "saved-at": "2026-11-19T10:00:02Z", "marker-instance-id": "i-0ffffffffffffffff"},
            ["is back on", "with all its data", "nothing was lost", "2026-11-19 10:00:02 UTC", "i-0ffffffffffffffff",
             "stopped cleanly", "no warm-up"],
            id="ready-complete",
        ),
        pytest.param(
            HOST_READY,
            {"dataset": "crash", "boot-seconds": 95.5, "steps": {"packages": 40.1, "volume": 3.0, "total": 95.5}},
            ["restarted after a crash", "at most the last second of writes", "fsynced every second",
             "No warm-up", "1 min 36 s (longest step: packages, 40 s)"],
            id="ready-crash",
        ),
        pytest.param(
            HOST_READY,
            {"dataset": "empty"},
            ["started EMPTY: data lost", "everything Redis held before is gone", "warm-up batch starts",
             "within working hours"],
            id="ready-empty",
        ),
        pytest.param(
            HOST_DRAINED,
            DRAINED,
            ["handed over cleanly", "12345 keys", "2026-11-20 05:12:51 UTC", "vol-0123456789abcdef0", "9 s",
             "nothing was lost", "Redis Host Ready"],
            id="drained-clean",
        ),
        pytest.param(
            HOST_DRAINED,
            {**DRAINED, "failed-steps": ["detach_volume"], "drain-seconds": 31.0},
            ["drained with 1 failed step", "12345 keys", "could not detach the data volume (detach_volume)",
             "the replacement waits until EC2 frees the volume"],
            id="drained-volume-not-detached",
        ),
        pytest.param(
            HOST_DRAINED,
            {**DRAINED, "failed-steps": ["save", "mark_clean"], "keys": None, "saved-at": None},
            ["drained with 2 failed steps", "could not save", "replacement reports a crash",
             "could not write the clean-stop marker (mark_clean)"],
            id="drained-not-saved",
        ),
        pytest.param(WARMUP_STARTED, {"task-arn": TASK_ARN, "trigger": HOST_READY.detail_type, "dataset": "empty"},
                     ["abc", "started with dataset empty"], id="warmup-started"),
        pytest.param(WARMUP_FINISHED, {"result": "succeeded", "exit-code": 0}, ["finished successfully"],
                     id="warmup-succeeded"),
        pytest.param(
            WARMUP_FINISHED,
            {"result": "failed", "exit-code": 3, "stopped-reason": "Essential container in task exited"},
            ["FAILED", "exit code 3", "Essential container", "logs"],
            id="warmup-failed",
        ),
        pytest.param(BOOTSTRAP_FAILED, {"step": "configure"}, ["FAILED", "step 'configure'.", "terminate"],
                     id="bootstrap-failed"),
        pytest.param(
            BOOTSTRAP_FAILED,
            {"step": "volume", "reason": "the data volume vol-1 was not available within 600 s"},
            ["FAILED", "step 'volume': the data volume vol-1 was not available within 600 s", "terminate"],
            id="bootstrap-failed-with-reason",
        ),
    ],
)  # fmt: skip
def test_custom_events(env: Env, kind: Any, extra: dict[str, Any], expected: list[str]) -> None:
    instance = support.run_instance()
    detail = {key: value for key, value in extra.items() if value is not None}
    result = env.run(support.custom_event(kind, {"instance-id": instance, "stack": support.STACK, **detail}))
    assert result["status"] == "delivered", result
    post = only_post(env)
    assert instance in post["text"]
    everything = post["text"] + "".join(json.dumps(block, ensure_ascii=False) for block in post["blocks"])
    for words in expected:
        assert words in everything


def test_a_rebalance_the_host_saw_makes_no_message(env: Env) -> None:
    """AWS's own 'EC2 Instance Rebalance Recommendation' event already makes one."""
    instance = support.run_instance()
    event = support.custom_event(
        REBALANCE_SEEN, {"instance-id": instance, "stack": support.STACK, "noticed-at": "2026-11-20T05:00:00Z"}
    )
    assert env.run(event)["status"] == "ignored"
    assert env.slack.posts == [] and env.fallback() == []
    [line] = [r for r in support.log_records(env.logs) if "rebalance" in r["message"]]
    assert line["level"] == "INFO" and line["instance_id"] == instance


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        (HOST_READY, {"dataset": "complete"}),
        (HOST_READY, {"dataset": "empty"}),
        (HOST_DRAINED, DRAINED),
    ],
)
def test_the_hosts_events_redelivered_make_one_message(env: Env, kind: Any, extra: dict[str, Any]) -> None:
    instance = support.run_instance()
    detail = {"instance-id": instance, "stack": support.STACK, **extra}
    assert env.run(support.custom_event(kind, detail, "first"))["status"] == "delivered"
    assert env.run(support.custom_event(kind, detail, "second"))["status"] == "delivered"  # the stored result
    assert len(env.slack.posts) == 1


def test_a_hosts_drain_and_its_replacements_boot_are_two_messages(env: Env) -> None:
    old, new = support.run_instance(), support.run_instance()
    env.run(support.custom_event(HOST_DRAINED, {"instance-id": old, "stack": support.STACK, **DRAINED}, "a"))
    env.run(support.custom_event(HOST_READY, {"instance-id": new, "stack": support.STACK, "dataset": "complete"}, "b"))
    assert [old in env.slack.posts[0]["text"], new in env.slack.posts[1]["text"]] == [True, True]


def test_block_kit_payload_shape(env: Env) -> None:
    instance = support.run_instance()
    env.run(spot_warning(instance))
    blocks = only_post(env)["blocks"]
    assert [block["type"] for block in blocks] == ["header", "section", "section", "section", "section", "context"]
    assert "12345678-1234-1234-1234-123456789012" in blocks[-1]["elements"][0]["text"]


# --- once, ours only, malformed --------------------------------------------------------------------------------


def test_same_spot_warning_twice_with_different_ids_posts_once(env: Env) -> None:
    instance = support.run_instance()
    env.run(spot_warning(instance, event_id="first"))
    env.run(spot_warning(instance, event_id="second"))
    assert len(env.slack.posts) == 1


def test_spot_warnings_of_two_instances_post_twice(env: Env) -> None:
    env.run(spot_warning(support.run_instance(), event_id="first"))
    env.run(spot_warning(support.run_instance(), event_id="second"))
    assert len(env.slack.posts) == 2


@pytest.mark.parametrize("stack", [None, "production"])
def test_foreign_instance_gets_no_message(env: Env, stack: str | None) -> None:
    instance = support.run_instance(stack=stack)
    assert env.run(spot_warning(instance))["status"] == "ignored"
    assert env.slack.posts == []


class RecordingEc2:
    """moto's EC2 client, with the names of the operations called."""

    def __init__(self) -> None:
        self._client = support.client("ec2")
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._client, name)


OWNERSHIP_CASES = [
    (HOST_READY, {"dataset": "complete"}),
    (HOST_READY, {"dataset": "crash"}),
    (HOST_READY, {"dataset": "empty"}),
    (HOST_DRAINED, DRAINED),
    (WARMUP_STARTED, {"task-arn": TASK_ARN}),
    (WARMUP_FINISHED, {"result": "succeeded"}),
    (BOOTSTRAP_FAILED, {"step": "configure"}),
]


def test_custom_events_are_ours_by_their_stack_not_by_instance_tags(env: Env) -> None:
    """AWS stops listing a terminated instance's tags about an hour after termination: a Warm-up Finished that
    outlives its host must still be said. Only this stack's host and functions put events naming this stack."""
    ec2 = RecordingEc2()
    app.clients.set("ec2", ec2)
    for n, (kind, extra) in enumerate(OWNERSHIP_CASES):
        gone = f"i-0{n}23456789abcdef0"  # no such instance, no tags
        theirs = support.custom_event(kind, {"instance-id": gone, "stack": "production", **extra}, f"t{n}")
        assert env.run(theirs)["status"] == "ignored", kind
        assert len(env.slack.posts) == n
        ours = support.custom_event(kind, {"instance-id": gone, "stack": support.STACK, **extra}, f"o{n}")
        assert env.run(ours)["status"] == "delivered", kind
        assert len(env.slack.posts) == n + 1
        assert gone in env.slack.posts[-1]["text"]
    theirs = support.custom_event(REBALANCE_SEEN, {"instance-id": "i-1", "stack": "production", "noticed-at": "x"})
    assert env.run(theirs)["status"] == "malformed"  # checked before the stack: a bad time is a bad event anywhere
    theirs["detail"]["noticed-at"] = "2026-11-20T05:00:00Z"
    assert env.run(theirs)["status"] == "ignored"
    assert "describe_tags" not in ec2.calls


def without_detail() -> dict[str, Any]:
    event = spot_warning("i-1234567890abcdef0", event_id="bad-event-1")
    del event["detail"]
    return event


MALFORMED = {
    "no detail": without_detail(),
    "detail is a list": {**spot_warning("i-1", event_id="bad-event-2"), "detail": ["i-1"]},
    "instance-id is a number": spot_warning(12345, event_id="bad-event-3"),  # type: ignore[arg-type]
    "unknown detail-type": {**spot_warning("i-1", event_id="bad-event-4"), "detail-type": "Something Else"},
    "bad time": {**spot_warning("i-1", event_id="bad-event-5"), "time": "yesterday"},
    "dataset partial": support.custom_event(
        HOST_READY, {"instance-id": "i-1", "stack": "staging", "dataset": "partial"}, "bad-event-6"
    ),
    "dataset missing": support.custom_event(HOST_READY, {"instance-id": "i-1", "stack": "staging"}, "bad-event-11"),
    "dataset of another stack is partial": support.custom_event(
        HOST_READY, {"instance-id": "i-1", "stack": "production", "dataset": "partial"}, "bad-event-12"
    ),
    "saved-at is not a time": support.custom_event(
        HOST_READY, {"instance-id": "i-1", "stack": "staging", "dataset": "complete", "saved-at": "last night"}, "b13"
    ),
    "drained without its notice time": support.custom_event(
        HOST_DRAINED, {"instance-id": "i-1", "stack": "staging", **DRAINED, "notice-time": None}, "bad-event-14"
    ),
    "failed steps is a string": support.custom_event(
        HOST_DRAINED, {"instance-id": "i-1", "stack": "staging", **DRAINED, "failed-steps": "save"}, "bad-event-15"
    ),
    "steps is a list": support.custom_event(
        HOST_DRAINED, {"instance-id": "i-1", "stack": "staging", **DRAINED, "steps": ["save"]}, "bad-event-16"
    ),
    "the old dataset event": support.custom_event(
        "Redis Dataset Empty", {"instance-id": "i-1", "stack": "staging"}, "bad-event-17"
    ),
    "warm-up result unknown": support.custom_event(
        WARMUP_FINISHED, {"instance-id": "i-1", "stack": "staging", "result": "maybe"}, "bad-event-8"
    ),
    "launch failure without group": support.load_event(
        "autoscaling-launch-unsuccessful", id="bad-event-7", detail={"AutoScalingGroupName": None}
    ),
    "alarm state is text": support.load_event(
        support.FAILED_EVENTS_ALARM_EVENT, id="bad-event-9", detail={"state": "ALARM"}
    ),
    "alarm without resources": support.load_event(support.FAILED_EVENTS_ALARM_EVENT, id="bad-event-10", resources=[]),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_event_logs_an_error_and_returns(env: Env, name: str) -> None:
    event = MALFORMED[name]
    result = env.run(event)
    assert result["status"] == "malformed"
    errors = [record for record in support.log_records(env.logs) if record["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["event_id"] == event["id"]
    assert env.slack.posts == []


def test_not_an_object_is_malformed(env: Env) -> None:
    assert env.run("nonsense")["status"] == "malformed"  # type: ignore[arg-type]
    assert [r["event_id"] for r in support.log_records(env.logs) if r["level"] == "ERROR"] == ["unknown"]


# --- Slack down: retries, fallback, nothing lost --------------------------------------------------------------


@pytest.mark.parametrize("slack_script", [[500, "hang", 500]])
def test_slack_500_then_timeout_goes_to_the_fallback(env: Env) -> None:
    instance = support.run_instance()
    result = env.run(spot_warning(instance))
    assert result["channel"] == "sns"
    assert len(env.slack.posts) == 3  # retried
    [notification] = env.fallback()
    assert instance in notification["Message"] and "Slack did not answer" in notification["Message"]
    assert notification["Subject"].startswith("[spot-redis] Spot interruption")


@pytest.mark.parametrize("length", [98, 99, 100, 150])
def test_the_fallback_subject_stays_under_sns_limit(env: Env, length: int) -> None:
    """SNS refuses a Subject of 100 characters or more: the subject is cut to 99 at most (and kept printable)."""
    title = ("é" + "x" * 200)[: length - len("[spot-redis] ")]
    notice = app.Notice(kind="test", subject="i-0", title=title, happened="h", next_step="n")
    app.publish_fallback(notice, "a test")
    [notification] = env.fallback()
    assert len(notification["Subject"]) == min(length, 99)
    assert notification["Subject"].startswith("[spot-redis] ?xx")


@pytest.mark.parametrize("slack_script", [[500, 200]])
def test_slack_500_then_200_is_retried_to_slack(env: Env) -> None:
    assert env.run(spot_warning(support.run_instance()))["channel"] == "slack"
    assert len(env.slack.posts) == 2
    assert env.fallback() == []


@pytest.mark.parametrize("slack_script", [[404]])
def test_slack_404_goes_to_the_fallback_at_once(env: Env) -> None:
    instance = support.run_instance()
    assert env.run(spot_warning(instance))["channel"] == "sns"
    assert len(env.slack.posts) == 1  # not retried
    [notification] = env.fallback()
    assert instance in notification["Message"] and "HTTP 404" in notification["Message"]


@pytest.mark.parametrize("slack_script", [[500]])
def test_retries_stop_when_the_function_runs_out_of_time(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.SLACK, "backoff", 5.0)
    env.context.remaining_ms = 4_000  # 3 s beyond the fallback reserve: one attempt, no time for a 5 s pause
    assert env.run(spot_warning(support.run_instance()))["channel"] == "sns"
    assert len(env.slack.posts) == 1


@pytest.mark.parametrize("slack_script", [[404, 200]])
def test_failed_delivery_leaves_no_record_so_the_retry_sends(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = support.run_instance()
    monkeypatch.setenv("FALLBACK_TOPIC_ARN", f"arn:aws:sns:{support.REGION}:{support.ACCOUNT}:missing")
    with pytest.raises(app.DeliveryFailedError):
        env.run(spot_warning(instance, event_id="first"))
    result = env.run(spot_warning(instance, event_id="first"))  # Lambda's retry of the same event
    assert result["channel"] == "slack"
    assert len(env.slack.posts) == 2


@pytest.mark.parametrize("slack_script", [[500, "hang", 404]])
def test_webhook_url_never_logged(env: Env) -> None:
    instance = support.run_instance()
    env.run(spot_warning(instance))
    env.run(support.load_event("dlm-policy-state-error"))
    logs = env.log_text()
    assert "Slack" in logs  # the failures were logged...
    assert env.slack.secret not in logs and "XyZsEcReTtOkEn123" not in logs  # ...without the URL
    assert env.slack.url not in logs


def test_webhook_read_from_ssm_once_per_container(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    ssm = support.client("ssm")
    calls = []
    original = ssm.get_parameter

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["Name"])
        return original(**kwargs)

    monkeypatch.setattr(ssm, "get_parameter", counting)
    app.clients.set("ssm", ssm)
    env.run(spot_warning(support.run_instance(), event_id="a"))
    env.run(spot_warning(support.run_instance(), event_id="b"))
    assert calls == [PARAM]
    assert len(env.slack.posts) == 2


# --- broken answers and broken URLs: the fallback, and never the URL ---------------------------------------------


def assert_secret_absent(env: Env, *texts: str) -> None:
    for text in (env.log_text(), *texts):
        assert env.slack.secret not in text and "XyZsEcReTtOkEn123" not in text and env.slack.url not in text


def exception_text(error: BaseException) -> str:
    """Everything the Lambda runtime could print about ``error``: its chain of causes and contexts, with args."""
    return "".join(traceback.format_exception(error)) + repr(error.args)


@pytest.mark.parametrize("slack_script", [["cut-headers"], ["bad-status"], ["bad-status", 200]])
def test_broken_http_answer_is_retried_then_goes_to_the_fallback(env: Env, slack_script: list[int | str]) -> None:
    instance = support.run_instance()
    result = env.run(spot_warning(instance))
    if slack_script[-1] == 200:
        assert result["channel"] == "slack" and len(env.slack.posts) == 2
        assert env.fallback() == []
        return
    assert result["channel"] == "sns"
    assert len(env.slack.posts) == 3  # retried, as a 5xx is
    [notification] = env.fallback()
    assert instance in notification["Message"] and "Slack did not answer" in notification["Message"]
    assert_secret_absent(env, notification["Message"])


def _bad_webhook(env: Env, bad: str) -> str:
    url = env.slack.url.replace("B0SECRET", f"B0{bad}SECRET")
    support.client("ssm").put_parameter(Name=PARAM, Value=url, Type="SecureString", Overwrite=True)
    return url


@pytest.mark.parametrize("bad", ["\n", " ", "\x7f"])
def test_webhook_with_whitespace_or_control_characters_goes_to_the_fallback(env: Env, bad: str) -> None:
    url = _bad_webhook(env, bad)
    instance = support.run_instance()
    assert env.run(spot_warning(instance))["channel"] == "sns"
    assert env.slack.posts == []
    [notification] = env.fallback()
    assert instance in notification["Message"] and "webhook URL unavailable" in notification["Message"]
    errors = [record for record in support.log_records(env.logs) if record["level"] == "ERROR"]
    assert errors and "webhook" in errors[0]["message"]
    assert_secret_absent(env, notification["Message"])
    assert url not in env.log_text() and repr(url) not in env.log_text()


def test_bad_webhook_and_no_fallback_raise_without_the_url(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _bad_webhook(env, " ")
    monkeypatch.setenv("FALLBACK_TOPIC_ARN", f"arn:aws:sns:{support.REGION}:{support.ACCOUNT}:missing")
    with pytest.raises(app.DeliveryFailedError) as raised:
        env.run(spot_warning(support.run_instance()))
    assert_secret_absent(env, exception_text(raised.value))
    assert url not in exception_text(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/services/T0SECRET/B0 SECRET/XyZsEcReTtOkEn123",  # http.client.InvalidURL
        "http://127.0.0.1:{port}/services/T0SECRET/B0\rSECRET/XyZsEcReTtOkEn123",  # http.client.InvalidURL
        "//127.0.0.1:{port}/services/T0SECRET/B0SECRET/XyZsEcReTtOkEn123",  # ValueError: unknown url type
    ],
)
def test_url_that_urllib_rejects_goes_to_the_fallback_at_once(
    env: Env, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """Should a bad URL get past the reader, the request's own errors (which quote the URL) stay inside."""
    port = env.slack.url.split(":")[2].split("/")[0]
    bad = url.format(port=port)
    attempts: list[str] = []
    post_once = app._post_once

    def counting(*args: Any, **kwargs: Any) -> Any:
        attempts.append("x")
        return post_once(*args, **kwargs)

    monkeypatch.setattr(app, "webhook_url", lambda: bad)
    monkeypatch.setattr(app, "_post_once", counting)
    monkeypatch.setattr(app, "_webhook_url", bad)  # what scrub() would know
    instance = support.run_instance()
    assert env.run(spot_warning(instance))["channel"] == "sns"
    assert len(attempts) == 1  # not retried
    [notification] = env.fallback()
    assert instance in notification["Message"]
    assert "XyZsEcReTtOkEn123" not in notification["Message"] and "XyZsEcReTtOkEn123" not in env.log_text()


# --- the valkey-serverless engine's alarms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "key"), [("cache-data-storage", "cacheMaxDataGb"), ("cache-ecpu", "cacheMaxEcpuPerSecond")]
)
def test_a_cache_limit_alarm_says_which_limit_and_how_to_raise_it(env: Env, suffix: str, key: str) -> None:
    alarm = support.make_alarm(f"spot-redis-staging-{suffix}")
    assert env.run(support.alarm_event(alarm))["kind"] == suffix
    text = only_post(env)["text"]
    assert f"spot-redis:{key}" in text and "spot-redis-staging" in text
    assert "failed-events" not in text and "could not handle" not in text


def test_a_cache_limit_alarm_of_another_stack_is_ignored(env: Env) -> None:
    alarm = support.make_alarm("spot-redis-other-cache-ecpu", stack="other")
    assert env.run(support.alarm_event(alarm))["status"] == "ignored"
    assert env.slack.posts == []
