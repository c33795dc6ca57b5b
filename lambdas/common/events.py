"""Parsing EventBridge events into a small, validated record, shared by the Lambdas.

Everything here is pure (no AWS calls). A handler calls :func:`parse_record` first, then the ``detail_*`` helpers
for the fields it needs; each raises :class:`MalformedEventError` with a message that says which field is wrong, so the
handler can log one error with the event id and return (a retry would not help with a malformed event).

The custom events (source :data:`spot_redis.events.SOURCE`) follow the contract of ``spot_redis/events.py``, which
infra/alerting.py packages into every function's zip: :func:`check_contract` refuses one that lacks a required key,
and every ``detail_*`` / ``optional_*`` helper refuses to read a key the event's kind does not have (a ``KeyError``:
a bug in the function, not in the event), so no handler can spell a key the senders do not put.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from spot_redis.events import BY_DETAIL_TYPE, SOURCE, Dataset, EventKind


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


def contract_kind(record: EventRecord) -> EventKind | None:
    """The kind of a custom event in spot_redis.events; None for an AWS event or an unknown custom detail-type."""
    return BY_DETAIL_TYPE.get(record.detail_type) if record.source == SOURCE else None


def contract_keys(kind: EventKind, *keys: str) -> tuple[str, ...]:
    """``keys``, each checked to be a detail key of ``kind`` (for modules that name keys once, at import)."""
    unknown = [key for key in keys if key not in kind.keys]
    if unknown:
        raise KeyError(f"{kind.detail_type!r} has no detail key {unknown} in spot_redis.events")
    return keys


def check_contract(record: EventRecord) -> EventKind | None:
    """The kind of a custom event whose detail has every key the contract requires; :class:`MalformedEventError`
    when one is missing (absent, null or empty, as ``spot_redis.events.entry`` refuses them). Keys the contract does
    not know are left alone: a newer sender may add optional keys."""
    kind = contract_kind(record)
    if kind is not None:
        missing = [key for key in kind.required if record.detail.get(key) in (None, "")]
        if missing:
            raise MalformedEventError(f"{kind.detail_type}: detail lacks {', '.join(missing)}")
    return kind


def _value(record: EventRecord, key: str) -> Any:
    kind = contract_kind(record)
    if kind is not None:
        contract_keys(kind, key)
    return record.detail.get(key)


def detail_str(record: EventRecord, key: str) -> str:
    """``detail[key]`` as a non-empty string; :class:`MalformedEventError` when missing, empty or not a string."""
    value = _value(record, key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedEventError(f"detail.{key} is missing or not a non-empty string")
    return value


def optional_str(record: EventRecord, key: str) -> str | None:
    """``detail[key]`` when it is a string, None when absent or null; :class:`MalformedEventError` on another type."""
    value = _value(record, key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEventError(f"detail.{key} is not a string")
    return value


def optional_int(record: EventRecord, key: str) -> int | None:
    """``detail[key]`` as an integer (not a bool), None when absent or null; else :class:`MalformedEventError`."""
    value = _value(record, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEventError(f"detail.{key} is not an integer")
    return value


def optional_amount(record: EventRecord, key: str, what: str = "a number, not negative") -> float | None:
    """``detail[key]`` as a number (int or float, not negative), None when absent or null; ``what`` names it in the
    :class:`MalformedEventError`."""
    value = _value(record, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise MalformedEventError(f"detail.{key} is not {what}")
    return float(value)


def optional_seconds(record: EventRecord, key: str) -> float | None:
    """``detail[key]`` as a number of seconds (int or float, not negative), None when absent or null."""
    return optional_amount(record, key, "a number of seconds")


def optional_time(record: EventRecord, key: str) -> datetime | None:
    """``detail[key]`` as an aware UTC time (ISO 8601), None when absent or null."""
    value = _value(record, key)
    return None if value is None else parse_time(value, f"detail.{key}")


def detail_time(record: EventRecord, key: str) -> datetime:
    """``detail[key]`` as an aware UTC time (ISO 8601); :class:`MalformedEventError` when missing or not a time."""
    return parse_time(detail_str(record, key), f"detail.{key}")


def detail_names(record: EventRecord, key: str) -> list[str]:
    """``detail[key]`` as a list of strings (possibly empty); else :class:`MalformedEventError`."""
    value = _value(record, key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedEventError(f"detail.{key} is not a list of strings")
    return value


def detail_step_seconds(record: EventRecord, key: str) -> dict[str, float]:
    """``detail[key]`` as ``{step name: seconds}``; else :class:`MalformedEventError`."""
    value = _value(record, key)
    if not isinstance(value, dict) or not all(
        isinstance(name, str) and not isinstance(seconds, bool) and isinstance(seconds, int | float)
        for name, seconds in value.items()
    ):
        raise MalformedEventError(f"detail.{key} is not an object of step names and seconds")
    return {name: float(seconds) for name, seconds in value.items()}


def dataset_value(value: Any, where: str = "detail.dataset") -> Dataset:
    """A :class:`spot_redis.events.Dataset` from its text; :class:`MalformedEventError` for anything else."""
    try:
        return Dataset(value)
    except (ValueError, TypeError):
        names = ", ".join(dataset.value for dataset in Dataset)
        raise MalformedEventError(f"{where} is {value!r}, not one of {names}") from None


def detail_dataset(record: EventRecord, key: str = "dataset") -> Dataset:
    """``detail[key]`` as a :class:`spot_redis.events.Dataset`; else :class:`MalformedEventError`."""
    return dataset_value(_value(record, key), f"detail.{key}")


def arn_resource_id(arn: str) -> str:
    """The last path element of an ARN: ``arn:aws:ec2::region:volume/vol-1`` → ``vol-1``."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
