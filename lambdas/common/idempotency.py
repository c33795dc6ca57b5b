"""Powertools Idempotency on the stack's DynamoDB table (default key schema: partition key ``id``, TTL ``expiration``).

Handlers key idempotency on what an event is about, never on the event id: :func:`subject_key` builds the small dict
``{"kind": ..., "subject": ...}`` (e.g. ``spot-interruption`` + ``i-0123``) that is passed as the keyword argument named
``key`` to a function wrapped with :func:`once`. Within :data:`WINDOW_SECONDS` (1 hour) the same kind and subject run
the function once; later calls return the stored result. When the wrapped function raises, Powertools deletes the
in-progress record, so a retry runs it again. :func:`run_once` also says whether this invocation was the one that ran
it (a redelivered event gets the first run's result back, marked as not first).

Each ``key_prefix`` has its own persistence layer: Powertools configures a layer once, from the first call it serves
(``BasePersistenceLayer.configure``), so two functions sharing one would share its expiry too.

The table also holds a few plain markers (:func:`put_marker` / :func:`has_marker`, ids ``marker#<name>``) for facts a
later event needs, such as "a Spot warning was seen for this instance"; they expire through the same TTL attribute.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from common.runtime import clients, require_env

WINDOW_SECONDS = 3600
"""How long the same kind and subject are considered the same thing: 1 hour."""

_stores: dict[tuple[str, str], DynamoDBPersistenceLayer] = {}


def subject_key(kind: str, subject: str) -> dict[str, str]:
    """The idempotency key of an event: what kind of thing happened, and to what (instance, volume, policy, group)."""
    return {"kind": kind, "subject": subject}


def persistence_store(key_prefix: str, table_name: str | None = None) -> DynamoDBPersistenceLayer:
    """The DynamoDB persistence layer of ``key_prefix`` on ``table_name`` (default: ``IDEMPOTENCY_TABLE``), one per
    container."""
    table = table_name or require_env("IDEMPOTENCY_TABLE")
    if (table, key_prefix) not in _stores:
        _stores[table, key_prefix] = DynamoDBPersistenceLayer(table_name=table, boto3_client=clients.get("dynamodb"))
    return _stores[table, key_prefix]


def once(
    function: Callable[..., Any],
    *,
    key_prefix: str,
    lambda_context: Any = None,
    window_seconds: int = WINDOW_SECONDS,
) -> Callable[..., Any]:
    """``function`` made idempotent on its keyword argument ``key`` (a :func:`subject_key` dict).

    Its return value must be JSON-serialisable (it is stored and returned to duplicates). ``key_prefix`` names the
    function in the record id (``<key_prefix>#<md5 of key>``) so that renaming the Lambda does not reset the window.
    """
    config = IdempotencyConfig(expires_after_seconds=window_seconds)
    if hasattr(lambda_context, "get_remaining_time_in_millis"):
        config.register_lambda_context(lambda_context)
    return idempotent_function(
        function,
        data_keyword_argument="key",
        persistence_store=persistence_store(key_prefix),
        config=config,
        key_prefix=key_prefix,
    )


@dataclass(frozen=True)
class Outcome:
    """What :func:`run_once` did: ``first`` when this invocation ran the function; ``result`` is what the function
    returned (the first run's, for a repeat); ``in_progress`` when another invocation is running it right now (then
    ``result`` is None)."""

    result: Any
    first: bool
    in_progress: bool = False


def run_once(
    function: Callable[..., Any],
    *,
    key: dict[str, str],
    key_prefix: str,
    lambda_context: Any = None,
    window_seconds: int = WINDOW_SECONDS,
    **arguments: Any,
) -> Outcome:
    """``function(**arguments)`` once per ``key`` within ``window_seconds``; raises what it raises (and then a retry
    runs it again). Its return value must be JSON-serialisable."""
    invocation = str(uuid.uuid4())

    def recorded(*, key: dict[str, str], invocation: str, **arguments: Any) -> dict[str, Any]:
        return {"invocation": invocation, "result": function(**arguments)}

    guarded = once(recorded, key_prefix=key_prefix, lambda_context=lambda_context, window_seconds=window_seconds)
    try:
        stored = guarded(key=key, invocation=invocation, **arguments)
    except IdempotencyAlreadyInProgressError:
        return Outcome(result=None, first=False, in_progress=True)
    return Outcome(result=stored["result"], first=stored["invocation"] == invocation)


def put_marker(name: str, ttl_seconds: int = WINDOW_SECONDS, table_name: str | None = None) -> None:
    """Remember ``name`` (e.g. ``spot-warning#i-0123``) for ``ttl_seconds``."""
    table = table_name or require_env("IDEMPOTENCY_TABLE")
    clients.get("dynamodb").put_item(
        TableName=table,
        Item={"id": {"S": f"marker#{name}"}, "expiration": {"N": str(int(time.time()) + ttl_seconds)}},
    )


def has_marker(name: str, table_name: str | None = None) -> bool:
    """Whether :func:`put_marker` stored ``name`` and it has not expired (DynamoDB TTL deletion lags, so check)."""
    table = table_name or require_env("IDEMPOTENCY_TABLE")
    item = clients.get("dynamodb").get_item(TableName=table, Key={"id": {"S": f"marker#{name}"}}, ConsistentRead=True)
    expiration = item.get("Item", {}).get("expiration", {}).get("N")
    return expiration is not None and int(expiration) > time.time()


def reset() -> None:
    """Forget the cached persistence layers (tests: after ``clients.reset()``)."""
    _stores.clear()
