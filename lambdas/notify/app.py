"""notify: one Slack message per thing that happened to the stack's Redis host, said once, never lost silently.

EventBridge → this function → Slack (Block Kit, with a plain-text ``text``), SNS fallback topic when Slack refuses
(4xx: at once) or does not answer (5xx, timeout, connection error: retried with back-off within the function's time).

- Ownership: events about instances, volumes or alarms not tagged ``spot-redis:stack=<STACK_NAME>`` produce no
  message.
  Custom events (source, detail-types and detail keys: ``spot_redis/events.py``, packaged into this function's zip)
  are ours when ``detail.stack`` is ``STACK_NAME`` (only this stack's host and functions put such events); their
  instance's tags are not read, as AWS stops listing them about an hour after termination.
- The host's events say what was lost: "Redis Host Ready" with dataset complete (nothing), crash (at most the last
  second of writes) or empty (everything; the warm-up batch starts), "Redis Host Drained" (the interrupted host's
  hand-over, and what a failed step means). "Redis Host Rebalance Recommendation Seen" makes no message: AWS's own
  rebalance event already makes one.
- Once: idempotent on ``{kind, subject}`` (e.g. ``spot-interruption`` + instance id) for one hour
  (:data:`common.idempotency.WINDOW_SECONDS`), not on the event id. The stop/termination states of one instance share
  one kind, so ``shutting-down`` then ``terminated`` make one message. If both Slack and SNS fail the handler raises
  :class:`DeliveryFailedError`: Powertools deletes the idempotency record, and the Lambda retry sends it again.
- A launch failure says whether it is a lack of Spot capacity (lambdas/capacity then switches the group to on-demand
  when ON_DEMAND_FALLBACK is true, and its own "Redis Host On-Demand" says what that costs) or an error that needs a
  person, with the status message (common.launch_failures decides, for both functions).
- Malformed events (no detail, wrong types, unknown detail-type, a custom event that breaks its contract) are
  logged as errors with the event id; the handler returns normally because a retry would not help.
- The webhook URL is read from SSM once per container and never logged: a value with whitespace or control
  characters is refused (an error log without it, then the fallback), urllib's and http.client's exceptions are
  reduced to their type and status code (a broken answer is retried like a 5xx, a URL urllib rejects goes to the
  fallback at once), and every logged string goes through :func:`scrub`.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from common import idempotency
from common.events import (
    EventRecord,
    MalformedEventError,
    arn_resource_id,
    check_contract,
    detail_dataset,
    detail_names,
    detail_step_seconds,
    detail_str,
    detail_time,
    event_id,
    optional_amount,
    optional_int,
    optional_seconds,
    optional_str,
    optional_time,
    parse_record,
)
from common.launch_failures import LaunchFailure, classify
from common.ownership import alarm_is_ours, is_ours
from common.runtime import clients, clock, env_choice, require_env

from spot_redis.events import (
    BACK_TO_SPOT,
    BOOTSTRAP_FAILED,
    CACHE_ALARMS,
    HOST_DRAINED,
    HOST_READY,
    ON_DEMAND,
    REBALANCE_SEEN,
    SOURCE,
    WARMUP_DATASETS,
    WARMUP_FINISHED,
    WARMUP_REQUESTED,
    WARMUP_STARTED,
    Dataset,
)

logger = Logger(service="spot-redis-notify")

SPOT_WARNING_LEAD = timedelta(minutes=2)
"""AWS sends the Spot interruption warning two minutes before it reclaims the instance."""

SPOT_STATE_REASONS = ("Server.SpotInstanceTermination", "Server.SpotInstanceShutdown")
DOWN_STATES = ("stopping", "stopped", "shutting-down", "terminated")
DURABILITY = "append-only file fsynced every second, and saved when Redis stops at shutdown"
"""What ansible/roles/redis sets (appendonly yes, appendfsync everysec): what a lost host can have lost."""
DRAIN = (
    "the host's watcher drains it within the notice: it leaves the Auto Scaling group (so that the replacement "
    "starts at once), saves the data, stops Redis and detaches the data volume"
)
"""What spot_redis/agent/drain.py does on a Spot interruption notice."""
SNS_SUBJECT_LIMIT = 99
"""SNS refuses a Subject of 100 characters or more."""
AT_ZERO = (
    "the next time the group is at zero (the scheduled stop at the end of working hours, or a stop by hand); a "
    "serving host is never replaced for it"
)
READY = f"'{HOST_READY.detail_type}'"
READY_FOLLOWS = f"{READY} follows from the replacement, saying what it found on the volume"

DRAIN_STEPS: dict[str, tuple[str, str]] = {
    # spot_redis/agent/drain.py's step names: what the step does, what its failure means for the data and the
    # replacement.
    "leave_group": (
        "leave the Auto Scaling group",
        "the replacement starts only once EC2 has terminated this host, a few minutes later",
    ),
    "deregister": (
        "deregister from Cloud Map",
        "`redis` may name the old address until the replacement registers its own",
    ),
    "pause_writes": (
        "pause writes",
        "writes went on during the final save; what came after it is only in the append-only file",
    ),
    "save": (
        "save the data",
        "no final save and no clean-stop marker: the replacement reports a crash (at most the last second of writes "
        "missing)",
    ),
    "stop_redis": (
        "stop Redis",
        "Redis did not stop cleanly, so no clean-stop marker: the replacement reports a crash (at most the last second "
        "of writes missing)",
    ),
    "mark_clean": (
        "write the clean-stop marker",
        "the replacement reports a crash although the data was saved",
    ),
    "unmount": (
        "unmount the data volume",
        "the volume was detached while mounted: the replacement may report a crash",
    ),
    "detach_volume": (
        "detach the data volume",
        "the replacement waits until EC2 frees the volume at termination, a few minutes later",
    ),
    "announce": ("announce the drain", "nothing for the data"),
}


@dataclass
class SlackPolicy:
    """How hard to try Slack before the fallback. Tests make it fast; ``sleep`` is injectable too."""

    attempt_timeout: float = 5.0
    """Seconds for one HTTP request (connect + answer)."""
    backoff: float = 1.0
    """First pause between attempts; doubled after each failed attempt."""
    max_attempts: int = 4
    reserve: float = 8.0
    """Seconds of the function's remaining time kept for the SNS fallback and the idempotency record."""
    sleep: Callable[[float], None] = field(default=time.sleep)


SLACK = SlackPolicy()

_webhook_url: str | None = None


class DeliveryFailedError(RuntimeError):
    """Neither Slack nor the SNS fallback took the message; raised so that Lambda retries the event."""


@dataclass(frozen=True)
class Notice:
    """One message: what happened (to what), what the system does next, what the team must do (if anything)."""

    kind: str
    subject: str
    title: str
    happened: str
    next_step: str
    todo: str = "Nothing."
    emoji: str = ":information_source:"
    facts: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        """The plain-text fallback (Slack notifications, SNS e-mail)."""
        return f"{self.title}\n{self.happened}\nNext: {self.next_step}\nYou: {self.todo}"

    def blocks(self, record: EventRecord, stack: str) -> list[dict[str, Any]]:
        fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in self.facts]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": f"{self.title}"[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{self.emoji} {self.happened}"}},
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields[:10]})
        blocks += [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Next:* {self.next_step}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*You:* {self.todo}"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"stack `{stack}` · {record.detail_type} · {record.time:%Y-%m-%d %H:%M:%S} UTC"
                        f" · event {record.id}",
                    }
                ],
            },
        ]
        return blocks

    def payload(self, record: EventRecord, stack: str) -> dict[str, Any]:
        return {"text": self.text(), "blocks": self.blocks(record, stack)}


# --- events → notices ---------------------------------------------------------------------------------------------


def _owned_instance(record: EventRecord, stack: str) -> str | None:
    """detail.instance-id when the instance is ours, None (logged) when it is not."""
    instance_id = detail_str(record, "instance-id")
    if not is_ours(clients.get("ec2"), instance_id, stack):
        logger.info("not our instance: no message", extra={"instance_id": instance_id})
        return None
    return instance_id


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def spot_warning(record: EventRecord, stack: str) -> Notice | None:
    instance_id = _owned_instance(record, stack)
    if instance_id is None:
        return None
    action = optional_str(record, "instance-action") or "terminate"
    reclaimed_at = record.time + SPOT_WARNING_LEAD
    left = (reclaimed_at - clock.now()).total_seconds()
    when = f"in about {_duration(left)}" if left > 0 else "now (the warning arrived late)"
    idempotency.put_marker(f"spot-warning#{instance_id}", ttl_seconds=3 * idempotency.WINDOW_SECONDS)
    return Notice(
        kind="spot-interruption",
        subject=instance_id,
        title=f"Spot interruption: Redis host {instance_id} goes away {when}",
        happened=f"AWS will {action} the Spot instance `{instance_id}` at {reclaimed_at:%H:%M:%S} UTC ({when}).",
        next_step=f"{DRAIN[0].upper()}{DRAIN[1:]}. The replacement re-attaches the same volume and re-registers "
        f"`redis` in Cloud Map; {READY_FOLLOWS}.",
        todo="Nothing. Expect Redis to be unreachable for a few minutes: the host's 'handed over' message "
        f"({HOST_DRAINED.detail_type}), then the replacement's 'Redis is back' ({HOST_READY.detail_type}). If no "
        f"{READY} message follows within 15 minutes, look at the Auto Scaling group's activity.",
        emoji=":warning:",
        facts=(("Instance", f"`{instance_id}`"), ("Time left", _duration(left) if left > 0 else "none")),
    )


def rebalance(record: EventRecord, stack: str) -> Notice | None:
    instance_id = _owned_instance(record, stack)
    if instance_id is None:
        return None
    return Notice(
        kind="rebalance",
        subject=instance_id,
        title=f"Spot rebalance recommendation for Redis host {instance_id}",
        happened=f"AWS says the Spot instance `{instance_id}` is at higher risk of interruption.",
        next_step="The host keeps running: a recommendation does not replace it (it is the only host that can hold "
        "the data volume). If AWS then reclaims it, a 2-minute warning follows, and "
        f"{DRAIN}; {READY_FOLLOWS}.",
        todo="Nothing.",
        facts=(("Instance", f"`{instance_id}`"),),
    )


def _interrupted_by_spot(instance_id: str) -> bool:
    """Whether the instance went down because of a Spot interruption: a Spot warning was seen for it (a marker in the
    idempotency table), or its StateReason says so."""
    if idempotency.has_marker(f"spot-warning#{instance_id}"):
        return True
    reservations = clients.get("ec2").describe_instances(InstanceIds=[instance_id]).get("Reservations", [])
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            if instance.get("StateReason", {}).get("Code", "") in SPOT_STATE_REASONS:
                return True
    return False


def state_change(record: EventRecord, stack: str) -> Notice | None:
    state = detail_str(record, "state")
    instance_id = _owned_instance(record, stack)
    if instance_id is None:
        return None
    if state == "running":
        return Notice(
            kind="running",
            subject=instance_id,
            title=f"Redis host {instance_id} is running",
            happened=f"The instance `{instance_id}` is running (a new host, or the start of working hours).",
            next_step="It attaches the data volume, configures Redis and registers `redis` in Cloud Map, then says "
            f"{READY} with what it found: all the data, the data after a crash, or nothing.",
            todo="Nothing.",
            emoji=":large_green_circle:",
            facts=(("Instance", f"`{instance_id}`"), ("State", state)),
        )
    if state not in DOWN_STATES:
        raise MalformedEventError(f"detail.state {state!r} is not a state this function reports")
    if _interrupted_by_spot(instance_id):
        return Notice(
            kind="down",
            subject=instance_id,
            title=f"Redis host {instance_id} was reclaimed by a Spot interruption",
            happened=f"The instance `{instance_id}` is {state} after a Spot interruption.",
            next_step="Within the notice, the host's watcher drained it: it left the Auto Scaling group (the "
            "replacement started at once), saved the data, stopped Redis and detached the data volume; its 'handed "
            f"over' message says how that went. The replacement re-attaches the volume, and {READY_FOLLOWS}.",
            todo=f"Nothing, unless no {READY} message follows within 15 minutes: then look at the Auto Scaling "
            "group's activity.",
            emoji=":red_circle:",
            facts=(("Instance", f"`{instance_id}`"), ("State", state), ("Cause", "Spot interruption")),
        )
    return Notice(
        kind="down",
        subject=instance_id,
        title=f"Redis host {instance_id} stopped (scheduled stop)",
        happened=f"The instance `{instance_id}` is {state}, not because of Spot: this is the scheduled stop at the "
        "end of working hours (or someone stopped it by hand).",
        next_step="Redis is off until the next start of working hours; the data stays on the volume.",
        todo="Nothing. If this was not expected, check the Auto Scaling group's activity.",
        emoji=":crescent_moon:",
        facts=(("Instance", f"`{instance_id}`"), ("State", state), ("Cause", "scheduled or manual stop")),
    )


def launch_failure(record: EventRecord, stack: str) -> Notice | None:
    """The group could not launch the host: a lack of capacity (Spot, or on-demand once the group fell back to it), or
    an error that needs a person (common.launch_failures tells them apart)."""
    group = detail_str(record, "AutoScalingGroupName")
    message = optional_str(record, "StatusMessage") or "no reason given"
    details = record.detail.get("Details")
    zone = details.get("Availability Zone") if isinstance(details, dict) else None
    where = f" in {zone}" if isinstance(zone, str) and zone else ""
    failure = classify(message)
    facts = (("Group", f"`{group}`"), ("Reason", message))
    happened = f"The Auto Scaling group `{group}` could not launch the Redis host{where}: {message}"
    if failure is LaunchFailure.NEEDS_A_PERSON:
        return Notice(
            kind="launch-failed",
            subject=group,
            title="Redis host launch FAILED: a person must fix it",
            happened=happened,
            next_step="The group retries on its own, but this is not a lack of capacity: every attempt fails the same "
            "way until the cause is fixed, and the on-demand fallback does not apply. Redis is unavailable meanwhile.",
            todo="Fix what the reason names: an AMI, security group, subnet or key pair that does not exist, the "
            "launch template, permissions, or a quota (ask for more in Service Quotas); then `pulumi up` if the stack "
            "changed.",
            emoji=":rotating_light:",
            facts=facts,
        )
    if failure is LaunchFailure.ON_DEMAND_CAPACITY:
        return Notice(
            kind="launch-failed",
            subject=group,
            title=f"No on-demand capacity{where} either: Redis host not launched",
            happened=happened,
            next_step="The group launches on-demand already (no Spot capacity earlier) and keeps retrying, over all "
            f"its instance types; the data volume waits in its zone{where}.",
            todo="Redis is unavailable until a launch succeeds. If this lasts, add instance types to the stack config "
            "and `pulumi up`.",
            emoji=":x:",
            facts=facts,
        )
    if env_choice("ON_DEMAND_FALLBACK", ("true", "false"), default="false") == "true":
        next_step = (
            "The capacity function switches the group to on-demand instances of the same types for its next "
            f"attempt ('{ON_DEMAND.detail_type}' follows, with what it costs), and back to Spot {AT_ZERO}."
        )
    else:
        next_step = (
            "The group keeps retrying on its own, over all its instance types (the on-demand fallback is off: "
            f"spot-redis:onDemandFallback); the data volume waits in its zone{where}."
        )
    return Notice(
        kind="launch-failed",
        subject=group,
        title=f"No Spot capacity{where}: Redis host not launched",
        happened=happened,
        next_step=next_step,
        todo="Redis is unavailable until a launch succeeds. If Spot capacity keeps lacking, add instance types to the "
        "stack config and `pulumi up`.",
        emoji=":x:",
        facts=facts,
    )


def snapshot_failure(record: EventRecord, stack: str) -> Notice | None:
    source = detail_str(record, "source")
    resource_id = arn_resource_id(source)
    if not is_ours(clients.get("ec2"), resource_id, stack):
        logger.info("snapshot of a resource that is not ours: no message", extra={"resource_id": resource_id})
        return None
    cause = optional_str(record, "cause") or "no cause given"
    operation = optional_str(record, "event") or "snapshot"
    snapshot = arn_resource_id(optional_str(record, "snapshot_id") or "") or "unknown"
    return Notice(
        kind="snapshot-failed",
        subject=resource_id,
        title=f"EBS snapshot failed for Redis volume {resource_id}",
        happened=f"{operation} of `{resource_id}` failed: {cause}",
        next_step="Redis keeps running on the volume; the next scheduled snapshot tries again.",
        todo="Check the cause: until a snapshot succeeds, the fallback copy of the data is older than usual.",
        emoji=":x:",
        facts=(("Volume", f"`{resource_id}`"), ("Snapshot", f"`{snapshot}`"), ("Cause", cause)),
    )


def dlm_error(record: EventRecord, stack: str) -> Notice | None:
    state = detail_str(record, "state")
    policy = optional_str(record, "policy_id") or (record.resources[0] if record.resources else "")
    if not policy:
        raise MalformedEventError("neither detail.policy_id nor resources names the policy")
    policy_id = arn_resource_id(policy)
    cause = optional_str(record, "cause") or "no cause given"
    return Notice(
        kind="dlm-error",
        subject=policy_id,
        title=f"Snapshot policy {policy_id} is in {state}",
        happened=f"The DLM snapshot policy `{policy_id}` went into {state}: {cause}",
        next_step="No scheduled snapshots are taken while the policy is in error; Redis keeps running.",
        todo="Fix the cause (often the policy role's permissions) and `pulumi up`.",
        emoji=":x:",
        facts=(("Policy", f"`{policy_id}`"), ("Cause", cause)),
    )


def _stack_event(record: EventRecord, stack: str) -> str | None:
    """The instance id of a custom spot-redis event of this stack; None (logged) for another stack's event.

    ``detail.stack`` is the ownership test: only this stack's host and functions put spot-redis events naming this
    stack. The instance's tags are not read: AWS stops listing a terminated instance's tags about an hour after
    termination, and a Warm-up Finished may well outlive its host.
    """
    instance_id = detail_str(record, "instance-id")
    event_stack = detail_str(record, "stack")
    if event_stack != stack:
        logger.info(
            "event of another stack: no message", extra={"event_stack": event_stack, "instance_id": instance_id}
        )
        return None
    return instance_id


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _boot_fact(boot_seconds: float | None, steps: dict[str, float]) -> str:
    longest = max(((seconds, name) for name, seconds in steps.items() if name != "total"), default=None)
    total = _duration(boot_seconds) if boot_seconds is not None else "unknown"
    return f"{total} (longest step: {longest[1]}, {_duration(longest[0])})" if longest else total


def host_ready(record: EventRecord, stack: str) -> Notice | None:
    """The host agent's boot is done: Redis serves, and ``dataset`` says what the data volume held."""
    dataset = detail_dataset(record)
    saved_at = optional_time(record, "saved-at")
    stopped_by = optional_str(record, "marker-instance-id")
    boot_seconds = optional_seconds(record, "boot-seconds")
    steps = detail_step_seconds(record, "steps") if record.detail.get("steps") is not None else {}
    instance_id = _stack_event(record, stack)
    if instance_id is None:
        return None
    facts = [("Instance", f"`{instance_id}`"), ("Data", str(dataset))]
    if dataset is Dataset.COMPLETE:
        who = f"`{stopped_by}`" if stopped_by else "the previous host"
        when = f" (last save at {_at(saved_at)})" if saved_at else ""
        facts += [("Last save", _at(saved_at) if saved_at else "unknown"), ("Stopped cleanly", who)]
        notice = dict(
            title=f"Redis is back on {instance_id} with all its data",
            happened=f"Redis on `{instance_id}` serves the data volume exactly as {who} left it when it stopped "
            f"cleanly{when}: nothing was lost.",
            next_step="Nothing: no warm-up, the cache is as it was.",
            todo="Nothing.",
            emoji=":white_check_mark:",
        )
    elif dataset is Dataset.CRASH:
        notice = dict(
            title=f"Redis on {instance_id} restarted after a crash",
            happened=f"Redis on `{instance_id}` serves the data volume, but the host before it did not stop cleanly "
            "(no clean-stop marker that matches the data): at most the last second of writes before the crash may "
            "be missing (the append-only file is fsynced every second). Everything older is there.",
            next_step="No warm-up: the data is there.",
            todo="Nothing, unless the application cannot lose that last second. After a Spot interruption, the "
            f"interrupted host's message ({HOST_DRAINED.detail_type}) says which drain step failed.",
            emoji=":warning:",
        )
    else:
        warmup = "starts" if dataset in WARMUP_DATASETS else "does not start by itself"
        notice = dict(
            title=f"Redis on {instance_id} started EMPTY: data lost",
            happened=f"Redis on `{instance_id}` found no data on the data volume (a new or replaced volume): "
            "everything Redis held before is gone.",
            next_step=f"The warm-up batch {warmup} to rebuild the cache (within working hours; outside them nothing "
            "starts until someone runs it).",
            todo="Expect cache misses until the warm-up finishes; sessions are gone, so users must log in again.",
            emoji=":rotating_light:",
        )
    facts.append(("Boot took", _boot_fact(boot_seconds, steps)))
    return Notice(kind="host-ready", subject=instance_id, facts=tuple(facts), **notice)


def host_drained(record: EventRecord, stack: str) -> Notice | None:
    """The interrupted host's watcher drained it (spot_redis/agent/drain.py): what it saved, what failed."""
    notice_time = detail_time(record, "notice-time")
    detail_step_seconds(record, "steps")
    failed = detail_names(record, "failed-steps")
    keys = optional_int(record, "keys")
    saved_at = optional_time(record, "saved-at")
    drain_seconds = optional_seconds(record, "drain-seconds")
    volume = optional_str(record, "volume-id")
    instance_id = _stack_event(record, stack)
    if instance_id is None:
        return None
    volume_text = f"`{volume}`" if volume else "the data volume"
    took = f" in {_duration(drain_seconds)}" if drain_seconds is not None else ""
    saved = (
        f"saved {keys if keys is not None else 'its'} keys" + (f" (save at {_at(saved_at)})" if saved_at else "")
        if "save" not in failed
        else "could not save"
    )
    facts = (
        ("Instance", f"`{instance_id}`"),
        ("Notice", _at(notice_time)),
        ("Keys saved", str(keys) if keys is not None else "unknown"),
        ("Saved at", _at(saved_at) if saved_at else "unknown"),
        ("Drain took", _duration(drain_seconds) if drain_seconds is not None else "unknown"),
        ("Volume", volume_text),
        ("Failed steps", ", ".join(failed) if failed else "none"),
    )
    if not failed:
        return Notice(
            kind="drained",
            subject=instance_id,
            title=f"Redis host {instance_id} handed over cleanly before its Spot interruption",
            happened=f"After the Spot interruption notice ({_at(notice_time)}), `{instance_id}` left its Auto Scaling "
            f"group, {saved}, stopped Redis and detached {volume_text}{took}: nothing was lost.",
            next_step=f"The replacement is already starting; it attaches the volume, and {READY_FOLLOWS} "
            "(all the data).",
            todo="Nothing.",
            emoji=":arrows_counterclockwise:",
            facts=facts,
        )
    meanings = []
    for name in failed:
        what, meaning = DRAIN_STEPS.get(name, (name, "see the host agent's log"))
        meanings.append(f"could not {what} ({name}): {meaning}")
    return Notice(
        kind="drained",
        subject=instance_id,
        title=f"Redis host {instance_id} drained with {len(failed)} failed step{'s' if len(failed) != 1 else ''}",
        happened=f"After the Spot interruption notice ({_at(notice_time)}), `{instance_id}` drained{took} and "
        f"{saved}, but " + "; ".join(meanings) + ".",
        next_step=f"The replacement attaches {volume_text} as soon as it is free, and {READY_FOLLOWS}.",
        todo=f"Read the replacement's {READY} message: it says what was lost, if anything. If drains keep "
        "failing at the same step, check the host role's permissions and the host agent.",
        emoji=":warning:",
        facts=facts,
    )


def rebalance_seen(record: EventRecord, stack: str) -> Notice | None:
    """No message: AWS's own "EC2 Instance Rebalance Recommendation" event already makes one (:func:`rebalance`)."""
    noticed_at = detail_time(record, "noticed-at")
    instance_id = _stack_event(record, stack)
    if instance_id is not None:
        logger.info(
            "the host saw a rebalance recommendation: no message, AWS's own rebalance event makes one",
            extra={"instance_id": instance_id, "noticed_at": noticed_at.isoformat()},
        )
    return None


def warmup_requested(record: EventRecord, stack: str) -> Notice | None:
    """An operator's `spot-redis warmup`: who asked, for which host; 'warm-up started' follows from the warmup
    Lambda."""
    request_id = detail_str(record, "request-id")
    requested_by = detail_str(record, "requested-by")
    reason = optional_str(record, "reason")
    optional_time(record, "requested-at")
    instance_id = _stack_event(record, stack)
    if instance_id is None:
        return None
    return Notice(
        kind="warmup-requested",
        subject=f"{instance_id}/{request_id}",
        title=f"Cache warm-up requested for Redis on {instance_id}",
        happened=f"`{requested_by}` asked for the warm-up batch for Redis on `{instance_id}` (spot-redis warmup)"
        + (f": {reason}" if reason else "."),
        next_step="The warmup function starts the task; a 'warm-up started' message follows.",
        todo="Nothing.",
        emoji=":arrows_counterclockwise:",
        facts=(("Instance", f"`{instance_id}`"), ("Requested by", f"`{requested_by}`"), ("Request", request_id)),
    )


def warmup_started(record: EventRecord, stack: str) -> Notice | None:
    task = optional_str(record, "task-arn")
    dataset = optional_str(record, "dataset")
    instance_id = _stack_event(record, stack)
    if instance_id is None:
        return None
    return Notice(
        kind="warmup-started",
        subject=instance_id,
        title=f"Cache warm-up started for Redis on {instance_id}",
        happened=f"The warm-up batch is running for Redis on `{instance_id}`"
        + (f" (task `{arn_resource_id(task)}`)" if task else "")
        + (f", which started with dataset {dataset}." if dataset else "."),
        next_step="A 'warm-up finished' message follows when the task stops.",
        todo="Nothing.",
        emoji=":hourglass_flowing_sand:",
        facts=(("Instance", f"`{instance_id}`"), ("Task", f"`{task}`" if task else "unknown")),
    )


def warmup_finished(record: EventRecord, stack: str) -> Notice | None:
    """What lambdas/warmup sends: ``result`` ("succeeded" or "failed"), ``exit-code`` and ``stopped-reason``."""
    result = detail_str(record, "result")
    if result not in ("succeeded", "failed"):
        raise MalformedEventError(f"detail.result is {result!r}, not succeeded or failed")
    exit_code = optional_int(record, "exit-code")
    reason = optional_str(record, "stopped-reason")
    task = optional_str(record, "task-arn")
    instance_id = _stack_event(record, stack)
    if instance_id is None:
        return None
    code = f" (exit code {exit_code})" if exit_code is not None else ""
    facts = (("Instance", f"`{instance_id}`"), ("Task", f"`{task}`" if task else "unknown"))
    if result == "failed":
        return Notice(
            kind="warmup-finished",
            subject=instance_id,
            title=f"Cache warm-up FAILED for Redis on {instance_id}",
            happened=f"The warm-up batch for Redis on `{instance_id}` stopped with a failure{code}"
            + (f": {reason}." if reason else "."),
            next_step="Nothing runs again by itself; the cache fills slowly from application traffic.",
            todo="Read the task's logs and run the warm-up again once it is fixed.",
            emoji=":x:",
            facts=facts,
        )
    return Notice(
        kind="warmup-finished",
        subject=instance_id,
        title=f"Cache warm-up finished for Redis on {instance_id}",
        happened=f"The warm-up batch for Redis on `{instance_id}` finished successfully{code}.",
        next_step="Redis serves a warm cache.",
        todo="Nothing.",
        emoji=":white_check_mark:",
        facts=facts,
    )


def bootstrap_failed(record: EventRecord, stack: str) -> Notice | None:
    """The host's boot failed (the host agent's `boot`, or the user-data shim before it): the instance runs, but
    Redis may not."""
    step = detail_str(record, "step")
    reason = optional_str(record, "reason")
    instance_id = _stack_event(record, stack)
    if instance_id is None:
        return None
    facts = [("Instance", f"`{instance_id}`"), ("Step", step)]
    if reason:
        facts.append(("Reason", reason if len(reason) <= 500 else reason[:500] + "…"))
    return Notice(
        kind="bootstrap-failed",
        subject=instance_id,
        title=f"Redis host {instance_id} FAILED to set itself up",
        happened=f"The boot of `{instance_id}` stopped at step '{step}'"
        + (f": {reason}" if reason else "")
        + ". Redis may be down or not registered.",
        next_step="Nothing retries by itself (unless the reason says the host marked itself Unhealthy: then its "
        "Auto Scaling group replaces it); otherwise the instance keeps running until the end of working hours.",
        todo="Read /var/log/spot-redis-boot.log on the host (SSM Session Manager), fix, and terminate the "
        "instance: the Auto Scaling group starts a new one.",
        emoji=":rotating_light:",
        facts=tuple(facts),
    )


def _alarm_state(record: EventRecord) -> dict[str, Any]:
    state = record.detail.get("state")
    if not isinstance(state, dict) or not isinstance(state.get("value"), str):
        raise MalformedEventError("detail.state.value is missing or not a string")
    return state


def _waiting_events(state: dict[str, Any]) -> int | None:
    """How many events wait: the largest recent datapoint of the alarm's evaluation (messages visible in the
    queue); None when CloudWatch gave no usable one."""
    try:
        points = json.loads(state.get("reasonData") or "{}").get("recentDatapoints") or []
        return round(max(float(point) for point in points)) if points else None
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def _our_alarm_raised(record: EventRecord, stack: str) -> tuple[dict[str, Any], str] | None:
    """The alarm's new state and name when it went into ALARM and is this stack's; None (logged why) otherwise."""
    state = _alarm_state(record)
    alarm = detail_str(record, "alarmName")
    if not record.resources:
        raise MalformedEventError("resources does not name the alarm")
    if state["value"] != "ALARM":
        logger.info("alarm not in ALARM: no message", extra={"alarm": alarm, "state": state["value"]})
        return None
    if not alarm_is_ours(clients.get("cloudwatch"), record.resources[0], stack):
        logger.info("alarm that is not ours: no message", extra={"alarm": alarm})
        return None
    return state, alarm


def failed_events_waiting(record: EventRecord, stack: str) -> Notice | None:
    """The failed-events alarm (infra/alerting.py): a Lambda gave up on events, which wait in the SQS queue."""
    raised = _our_alarm_raised(record, stack)
    if raised is None:
        return None
    state, alarm = raised
    waiting = _waiting_events(state)
    count = f"{waiting} event{'s' if waiting != 1 else ''}" if waiting is not None else "Events"
    return Notice(
        kind="failed-events",
        # One message per time the alarm goes off: a repeat delivery has the same timestamp, a new episode another.
        subject=f"{alarm}@{state.get('timestamp') or record.time.isoformat()}",
        title=f"{count} the spot-redis Lambdas could not handle {'is' if waiting == 1 else 'are'} waiting",
        happened=f"The alarm `{alarm}` went off: the notify, warmup or capacity function gave up on events after "
        "its retries, so a message may be missing above, a warm-up may not have started, or the group may not have "
        "switched between Spot and on-demand.",
        next_step="The events wait in the failed-events queue for 14 days; nothing retries them by itself.",
        todo="Read them (`pulumi stack output failedEventsQueueUrl`, then `aws sqs receive-message`), act on what "
        "they say, fix the cause (the function's logs say it), then delete them.",
        emoji=":rotating_light:",
        facts=(("Alarm", f"`{alarm}`"), ("Waiting", str(waiting) if waiting is not None else "unknown")),
    )


def cache_alarm_kind(alarm: str) -> str | None:
    """Which of the serverless cache's alarms (spot_redis.events.CACHE_ALARMS) an alarm name is, by its suffix."""
    return next((kind for kind in CACHE_ALARMS if alarm.endswith(f"-{kind}")), None)


def alarm_raised(record: EventRecord, stack: str) -> Notice | None:
    """An alarm of this stack went off: the serverless cache's usage-limit alarms, else the failed-events alarm."""
    kind = cache_alarm_kind(detail_str(record, "alarmName"))
    return failed_events_waiting(record, stack) if kind is None else cache_limit(record, stack, kind)


def cache_limit(record: EventRecord, stack: str, kind: str) -> Notice | None:
    """The valkey-serverless engine's cache nears a usage limit (infra/serverless.py): data storage or ECPUs."""
    raised = _our_alarm_raised(record, stack)
    if raised is None:
        return None
    state, alarm = raised
    key = "cacheMaxDataGb" if kind == "cache-data-storage" else "cacheMaxEcpuPerSecond"
    return Notice(
        kind=kind,
        subject=f"{alarm}@{state.get('timestamp') or record.time.isoformat()}",
        title=f"The Valkey cache of {stack} nears its {'data storage' if key == 'cacheMaxDataGb' else 'ECPU'} limit",
        happened=f"The alarm `{alarm}` went off: {CACHE_ALARMS[kind]}.",
        next_step="ElastiCache keeps the limit: nothing grows the bill beyond it, and nothing raises it by itself.",
        todo=f"Look at what the application stores or sends; raise `spot-redis:{key}` (`pulumi up`) if the need is "
        "real (`spot-redis cost` prices it).",
        emoji=":warning:",
        facts=(("Alarm", f"`{alarm}`"), ("Limit", f"`spot-redis:{key}`")),
    )


def _stack_group_event(record: EventRecord, stack: str) -> str | None:
    """The group of a custom event of the capacity function, for this stack; None (logged) for another stack's."""
    group = detail_str(record, "group")
    event_stack = detail_str(record, "stack")
    if event_stack != stack:
        logger.info("event of another stack: no message", extra={"event_stack": event_stack, "group": group})
        return None
    return group


def _dollars(amount: float) -> str:
    return f"${amount:.4f}".rstrip("0").rstrip(".") if amount else "$0"


def _cost(record: EventRecord) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What on-demand costs more than Spot, as a sentence and as facts, from the event's prices (the capacity
    function's price table); says so when the table has no price for the type."""
    instance_type = optional_str(record, "instance-type")
    on_demand = optional_amount(record, "on-demand-per-hour", "a price")
    spot = optional_amount(record, "spot-per-hour", "a price")
    extra = optional_amount(record, "extra-per-hour", "a price")
    as_of = optional_str(record, "prices-as-of") or "unknown date"
    missing = detail_names(record, "types-without-price") if record.detail.get("types-without-price") else []
    facts: list[tuple[str, str]] = [("Instance type", f"`{instance_type}`" if instance_type else "unknown")]
    if on_demand is None or spot is None or extra is None:
        sentence = (
            f"What on-demand {instance_type or 'capacity'} costs is not in the price table "
            "(lambdas/common/prices.py): see the EC2 on-demand pricing page."
        )
    else:
        sentence = (
            f"On-demand {instance_type} costs {_dollars(on_demand)}/h against about {_dollars(spot)}/h on Spot: "
            f"{_dollars(extra)} more per hour while it runs (price table of {as_of})."
        )
        facts += [
            ("Extra per hour", _dollars(extra)),
            ("On-demand / Spot", f"{_dollars(on_demand)} / {_dollars(spot)}"),
        ]
    if missing:
        facts.append(("Not in the price table", ", ".join(missing)))
    return sentence, tuple(facts)


def on_demand(record: EventRecord, stack: str) -> Notice | None:
    """lambdas/capacity switched the group to on-demand after a Spot launch without capacity."""
    activity = detail_str(record, "activity-id")
    message = detail_str(record, "status-message")
    zone = optional_str(record, "availability-zone")
    cost, cost_facts = _cost(record)
    group = _stack_group_event(record, stack)
    if group is None:
        return None
    extra = optional_amount(record, "extra-per-hour", "a price")
    return Notice(
        kind="on-demand",
        subject=activity,
        title="No Spot capacity: the Redis host runs ON-DEMAND"
        + (f" ({_dollars(extra)}/h more)" if extra is not None else ""),
        happened=f"The Auto Scaling group `{group}` could not launch a Spot instance"
        + (f" in {zone}" if zone else "")
        + f" ({message}), so it now launches on-demand instances of the same types: the host comes back at the "
        "group's next attempt, and runs on-demand. " + cost,
        next_step=f"The group goes back to 100% Spot {AT_ZERO}.",
        todo="Nothing, unless the extra cost matters: then stop the host (set the group's desired capacity to 0) "
        "and start it again later, when Spot may have capacity.",
        emoji=":moneybag:",
        facts=(("Group", f"`{group}`"), *cost_facts),
    )


def back_to_spot(record: EventRecord, stack: str) -> Notice | None:
    """lambdas/capacity returned the group to Spot while it was at zero."""
    activity = detail_str(record, "activity-id")
    group = _stack_group_event(record, stack)
    if group is None:
        return None
    return Notice(
        kind="back-to-spot",
        subject=activity,
        title="The Redis host is back on Spot",
        happened=f"The Auto Scaling group `{group}` stopped its on-demand host and is at zero: its next launch is a "
        "Spot instance again, and the on-demand extra cost has ended.",
        next_step="The next start launches Spot. If Spot has no capacity then, the group switches to on-demand "
        "again, and says so.",
        todo="Nothing.",
        emoji=":white_check_mark:",
        facts=(("Group", f"`{group}`"),),
    )


ROUTES: dict[tuple[str, str], Callable[[EventRecord, str], Notice | None]] = {
    ("aws.ec2", "EC2 Spot Instance Interruption Warning"): spot_warning,
    ("aws.ec2", "EC2 Instance Rebalance Recommendation"): rebalance,
    ("aws.ec2", "EC2 Instance State-change Notification"): state_change,
    ("aws.autoscaling", "EC2 Instance Launch Unsuccessful"): launch_failure,
    ("aws.ec2", "EBS Snapshot Notification"): snapshot_failure,
    ("aws.dlm", "DLM Policy State Change"): dlm_error,
    (SOURCE, HOST_READY.detail_type): host_ready,
    (SOURCE, HOST_DRAINED.detail_type): host_drained,
    (SOURCE, REBALANCE_SEEN.detail_type): rebalance_seen,  # deliberately silent
    (SOURCE, BOOTSTRAP_FAILED.detail_type): bootstrap_failed,
    (SOURCE, WARMUP_REQUESTED.detail_type): warmup_requested,
    (SOURCE, WARMUP_STARTED.detail_type): warmup_started,
    (SOURCE, WARMUP_FINISHED.detail_type): warmup_finished,
    (SOURCE, ON_DEMAND.detail_type): on_demand,
    (SOURCE, BACK_TO_SPOT.detail_type): back_to_spot,
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): alarm_raised,
}


# --- delivery -----------------------------------------------------------------------------------------------------


def scrub(text: str) -> str:
    """``text`` with the webhook URL (and its path, the secret part) removed."""
    url = _webhook_url
    if url:
        text = text.replace(url, "<webhook>")
        path = urlsplit(url).path
        if len(path) > 1:
            text = text.replace(path, "<webhook-path>")
    return text


def webhook_url() -> str:
    """The Slack webhook URL from the SSM SecureString ``SLACK_WEBHOOK_PARAM``, read once per container."""
    global _webhook_url
    if _webhook_url is None:
        response = clients.get("ssm").get_parameter(Name=require_env("SLACK_WEBHOOK_PARAM"), WithDecryption=True)
        url = response["Parameter"]["Value"].strip()
        if any(ch.isspace() or not ch.isprintable() for ch in url):
            # http.client would refuse it with an error that quotes the path (the secret): never let it get there.
            raise ValueError("the Slack webhook parameter contains whitespace or control characters")
        parts = urlsplit(url)
        local = parts.hostname in ("127.0.0.1", "localhost")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("the Slack webhook parameter is not an https URL")
        _webhook_url = url
    return _webhook_url


def _post_once(url: str, body: bytes, timeout: float) -> str | None:
    """None when Slack took the message; else a short, URL-free reason (only exception type names, never their
    messages, which may quote the URL). Raises _RefusedError on 4xx other than 429 and on a URL urllib rejects."""
    refused: str | None = None
    try:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in webhook_url()
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return None
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
    except TimeoutError:
        return "timeout"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return "timeout" if isinstance(reason, TimeoutError) else f"connection error ({type(reason).__name__})"
    except (http.client.InvalidURL, ValueError) as error:
        refused = f"unusable webhook URL ({type(error).__name__})"  # raised below, outside this block: no context
    except http.client.HTTPException as error:
        return f"broken HTTP answer ({type(error).__name__})"  # IncompleteRead, BadStatusLine, ...: like a 5xx
    if refused is not None:
        raise _RefusedError(refused)
    if 400 <= status < 500 and status != 429:
        raise _RefusedError(f"HTTP {status}")
    return f"HTTP {status}"


class _RefusedError(Exception):
    """Slack answered 4xx: retrying will not help."""


def post_to_slack(payload: dict[str, Any], context: Any) -> str | None:
    """None when Slack took ``payload``; else why not (after retries with back-off within the remaining time)."""
    try:
        url = webhook_url()
    except Exception as error:
        reason = f"webhook URL unavailable ({type(error).__name__})"
        message = str(error) if isinstance(error, ValueError) else type(error).__name__  # our messages, value-free
        logger.error("cannot use the Slack webhook parameter", extra={"reason": reason, "error": message})
        return reason
    body = json.dumps(payload).encode()
    policy = SLACK
    pause = policy.backoff
    reason = "not tried"
    for attempt in range(1, policy.max_attempts + 1):
        budget = _remaining_seconds(context) - policy.reserve
        if budget <= 0:
            reason = "no time left to try Slack" if attempt == 1 else reason
            break
        try:
            failure = _post_once(url, body, min(policy.attempt_timeout, budget))
        except _RefusedError as refused:
            logger.error("Slack refused the message", extra={"reason": str(refused), "attempt": attempt})
            return f"Slack refused the message ({refused})"
        if failure is None:
            return None
        reason = failure
        logger.warning("Slack did not take the message", extra={"reason": scrub(reason), "attempt": attempt})
        if attempt == policy.max_attempts:
            break
        if _remaining_seconds(context) - policy.reserve <= pause:
            reason = f"{reason}; no time left to retry"
            break
        policy.sleep(pause)
        pause *= 2
    return f"Slack did not answer ({scrub(reason)})"


def _remaining_seconds(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() / 1000 if callable(getter) else 60.0


def publish_fallback(notice: Notice, why: str) -> None:
    """Send the plain-text message to the SNS fallback topic (e-mail)."""
    subject = f"[spot-redis] {notice.title}"
    subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:SNS_SUBJECT_LIMIT]
    clients.get("sns").publish(
        TopicArn=require_env("FALLBACK_TOPIC_ARN"),
        Subject=subject,
        Message=f"{notice.text()}\n\n(sent by e-mail because {why})",
    )


def deliver(*, key: dict[str, str], notice: Notice, payload: dict[str, Any], context: Any) -> dict[str, str]:
    """Slack, else the SNS fallback; raises :class:`DeliveryFailedError` when both fail. Made idempotent on ``key``."""
    why = post_to_slack(payload, context)
    if why is None:
        logger.info("message sent to Slack", extra=key)
        return {"channel": "slack"}
    try:
        publish_fallback(notice, why)
    except Exception as error:
        failure = f"Slack: {why}; SNS fallback: {type(error).__name__}"
    else:
        logger.warning("message sent to the SNS fallback", extra={**key, "reason": why})
        return {"channel": "sns"}
    logger.error("message not delivered", extra={**key, "reason": scrub(failure)})
    raise DeliveryFailedError(scrub(failure))


# --- handler ------------------------------------------------------------------------------------------------------


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    logger.append_keys(event_id=event_id(event))
    try:
        record = parse_record(event)
        route = ROUTES.get((record.source, record.detail_type))
        if route is None:
            raise MalformedEventError(f"unknown event: source {record.source!r}, detail-type {record.detail_type!r}")
        check_contract(record)
        stack = require_env("STACK_NAME")
        notice = route(record, stack)
    except MalformedEventError as error:
        logger.error("malformed event: no message", extra={"error": str(error)})
        return {"status": "malformed", "error": str(error)}
    if notice is None:
        return {"status": "ignored"}
    logger.append_keys(kind=notice.kind, subject=notice.subject)
    key = idempotency.subject_key(notice.kind, notice.subject)
    send = idempotency.once(deliver, key_prefix="spot-redis-notify", lambda_context=context)
    result = send(key=key, notice=notice, payload=notice.payload(record, stack), context=context)
    return {"status": "delivered", "kind": notice.kind, "subject": notice.subject, **result}


def reset_caches() -> None:
    """Forget the per-container caches (webhook URL, clients, persistence layer): for tests."""
    global _webhook_url
    _webhook_url = None
    clients.reset()
    idempotency.reset()
