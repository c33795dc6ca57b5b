"""Parsing EventBridge events into a small, validated record, shared by the Lambdas.

Everything here is pure (no AWS calls). A handler calls :func:`parse_record` first, then the ``detail_*`` helpers
for the fields it needs; each raises :class:`MalformedEventError` with a message that says which field is wrong, so the
handler can log one error with the event id and return (a retry would not help with a malformed event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent


class MalformedEventError(ValueError):
    """The event lacks what the handler needs, or has it with the wrong type."""


@dataclass(frozen=True)
class EventRecord:
    """The parts of an EventBridge event the handlers use. ``detail`` is always a dict."""

    id: str
    detail_type: str
    source: str
    time: datetime
    resources: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


def event_id(event: Any) -> str:
    """The event's id for logging, or "unknown" when it has none (never raises)."""
    if isinstance(event, dict) and isinstance(event.get("id"), str) and event["id"]:
        return event["id"]
    return "unknown"


def parse_record(event: Any) -> EventRecord:
    """An :class:`EventRecord` from a raw EventBridge event (via Powertools' ``EventBridgeEvent``).

    Requires non-empty string ``id``, ``detail-type`` and ``source``, an ISO 8601 ``time`` and a dict ``detail``;
    ``resources`` must be a list of strings when present. Raises :class:`MalformedEventError` otherwise.
    """
    if not isinstance(event, dict):
        raise MalformedEventError(f"the event is a {type(event).__name__}, not an object")
    bridge = EventBridgeEvent(event)
    for key in ("id", "detail-type", "source", "time"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise MalformedEventError(f"the event has no {key!r} string")
    if not isinstance(event.get("detail"), dict):
        raise MalformedEventError("the event has no 'detail' object")
    resources = event.get("resources", [])
    if not isinstance(resources, list) or not all(isinstance(item, str) for item in resources):
        raise MalformedEventError("the event's 'resources' is not a list of strings")
    return EventRecord(
        id=bridge.get_id,
        detail_type=bridge.detail_type,
        source=bridge.source,
        time=parse_time(bridge.time, "time"),
        resources=tuple(resources),
        detail=dict(bridge.detail),
    )


def parse_time(value: Any, name: str) -> datetime:
    """An aware UTC datetime from an ISO 8601 string such as ``2026-11-20T05:12:40Z``."""
    if not isinstance(value, str):
        raise MalformedEventError(f"{name!r} is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEventError(f"{name!r} is not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def detail_str(record: EventRecord, key: str) -> str:
    """``detail[key]`` as a non-empty string; :class:`MalformedEventError` when missing, empty or not a string."""
    value = record.detail.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedEventError(f"detail.{key} is missing or not a non-empty string")
    return value


def optional_str(record: EventRecord, key: str) -> str | None:
    """``detail[key]`` when it is a string, None when absent or null; :class:`MalformedEventError` on another type."""
    value = record.detail.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEventError(f"detail.{key} is not a string")
    return value


def optional_int(record: EventRecord, key: str) -> int | None:
    """``detail[key]`` as an integer (not a bool), None when absent or null; else :class:`MalformedEventError`."""
    value = record.detail.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEventError(f"detail.{key} is not an integer")
    return value


def arn_resource_id(arn: str) -> str:
    """The last path element of an ARN: ``arn:aws:ec2::region:volume/vol-1`` → ``vol-1``."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
