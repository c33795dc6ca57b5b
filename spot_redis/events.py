"""The contract of the custom events on EventBridge: their source, detail-types and detail keys, defined once.

The host agent (spot_redis.agent), the warmup Lambda, the capacity Lambda and `spot-redis warmup` send these events;
the Lambdas (lambdas/) handle them and infra/event_patterns.py routes them. Every part imports this module; nothing
else spells these names.
Pure Python, standard library only: it is copied into every Lambda's zip and into the host's Ansible bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

SOURCE = "spot-redis"
STACK_TAG = "spot-redis:stack"


class Dataset(StrEnum):
    """What a booting host found on the data volume, said precisely."""

    COMPLETE = "complete"  # a clean stop left a marker that matches the data: nothing was lost
    CRASH = "crash"  # data without a matching clean-stop marker: at most the last second of writes is missing
    EMPTY = "empty"  # no data at all (a new or replaced volume)


@dataclass(frozen=True)
class EventKind:
    detail_type: str
    required: tuple[str, ...]  # detail keys every event of this kind carries
    optional: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.required + self.optional


_ABOUT_HOST = ("instance-id", "stack")

HOST_READY = EventKind(
    "Redis Host Ready",
    (*_ABOUT_HOST, "dataset"),
    # saved-at: the time of the last save the clean-stop marker names (complete only); marker-instance-id: the host
    # that wrote it; boot-seconds: how long the boot took; steps: seconds per boot step.
    ("saved-at", "marker-instance-id", "boot-seconds", "steps"),
)
HOST_DRAINED = EventKind(
    "Redis Host Drained",
    (*_ABOUT_HOST, "notice-time", "steps", "failed-steps"),
    # keys and saved-at: what the final save held; drain-seconds: from the notice to the volume detached.
    ("keys", "saved-at", "drain-seconds", "volume-id"),
)
REBALANCE_SEEN = EventKind("Redis Host Rebalance Recommendation Seen", (*_ABOUT_HOST, "noticed-at"))
BOOTSTRAP_FAILED = EventKind("Redis Host Bootstrap Failed", (*_ABOUT_HOST, "step"), ("reason",))
WARMUP_STARTED = EventKind("Redis Warm-up Started", (*_ABOUT_HOST, "task-arn"), ("trigger", "dataset"))
# An operator's `spot-redis warmup`: the warmup Lambda starts the batch for the running host, whatever its dataset.
# request-id: one per request (a redelivery starts nothing twice); requested-by: the caller's AWS identity (ARN).
WARMUP_REQUESTED = EventKind(
    "Redis Warm-up Requested", (*_ABOUT_HOST, "request-id", "requested-by"), ("reason", "requested-at")
)
WARMUP_FINISHED = EventKind(
    "Redis Warm-up Finished", (*_ABOUT_HOST, "result"), ("task-arn", "exit-code", "stopped-reason")
)

# The capacity Lambda's events are about the Auto Scaling group, not about one instance.
_ABOUT_GROUP = ("group", "stack", "activity-id")
ON_DEMAND = EventKind(
    "Redis Host On-Demand",
    # activity-id and status-message: the failed Spot launch that made the group switch. The prices are USD per hour
    # of the instance type the group launches first, from lambdas/common/prices.py's table (absent for a type or a
    # region the table lacks).
    (*_ABOUT_GROUP, "status-message"),
    (
        "availability-zone",
        "instance-type",
        "on-demand-per-hour",
        "spot-per-hour",
        "extra-per-hour",
        "prices-as-of",
        "types-without-price",
    ),
)
# activity-id: the termination that left the group at zero.
BACK_TO_SPOT = EventKind("Redis Host Back To Spot", _ABOUT_GROUP)

# What the host agent sends, what the warmup Lambda sends, what the capacity Lambda sends, what the operator's
# `spot-redis` command sends.
AGENT_EVENTS = (HOST_READY, HOST_DRAINED, REBALANCE_SEEN, BOOTSTRAP_FAILED)
WARMUP_EVENTS = (WARMUP_STARTED, WARMUP_FINISHED)
CAPACITY_EVENTS = (ON_DEMAND, BACK_TO_SPOT)
OPERATOR_EVENTS = (WARMUP_REQUESTED,)
ALL_EVENTS = AGENT_EVENTS + WARMUP_EVENTS + CAPACITY_EVENTS + OPERATOR_EVENTS
BY_DETAIL_TYPE = {kind.detail_type: kind for kind in ALL_EVENTS}

# The one dataset that starts the warm-up batch by itself.
WARMUP_DATASETS = (Dataset.EMPTY,)

# The valkey-serverless engine's CloudWatch alarms (infra/serverless.py), by the suffix of their names
# (spot-redis-<stack>-<suffix>), with what they mean; notify tells them from the failed-events alarm by that suffix.
CACHE_ALARMS = {
    "cache-data-storage": "The serverless cache holds more than 80% of its maximum data storage (cacheMaxDataGb): "
    "at the limit it evicts keys or refuses writes",
    "cache-ecpu": "The serverless cache uses more than 80% of its maximum ECPUs per second (cacheMaxEcpuPerSecond): "
    "at the limit it throttles commands",
}


def iso_time(moment: datetime) -> str:
    """How a time is written in an event's detail: UTC, to the second, with a Z (2026-11-20T05:14:40Z)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def entry(kind: EventKind, detail: dict, event_bus: str = "default") -> dict:
    """A PutEvents entry of this kind; refuses a detail that lacks a required key or has one the contract lacks."""
    missing = [key for key in kind.required if detail.get(key) in (None, "")]
    unknown = sorted(set(detail) - set(kind.keys))
    if missing or unknown:
        raise ValueError(f"{kind.detail_type}: missing {missing}, unknown {unknown}")
    return {"Source": SOURCE, "DetailType": kind.detail_type, "Detail": json.dumps(detail), "EventBusName": event_bus}
