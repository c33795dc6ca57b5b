"""Powertools Idempotency on the stack's DynamoDB table (default key schema: partition key ``id``, TTL ``expiration``).

Handlers key idempotency on what an event is about, never on the event id: :func:`subject_key` builds the small dict
``{"kind": ..., "subject": ...}`` (e.g. ``spot-interruption`` + ``i-0123``) that is passed as the keyword argument named
``key`` to a function wrapped with :func:`once`. Within :data:`WINDOW_SECONDS` (1 hour) the same kind and subject run
the function once; later calls return the stored result. When the wrapped function raises, Powertools deletes the
in-progress record, so a retry runs it again.

The table also holds a few plain markers (:func:`put_marker` / :func:`has_marker`, ids ``marker#<name>``) for facts a
later event needs, such as "a Spot warning was seen for this instance"; they expire through the same TTL attribute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from common.runtime import clients, require_env

WINDOW_SECONDS = 3600
"""How long the same kind and subject are considered the same thing: 1 hour."""

_stores: dict[str, DynamoDBPersistenceLayer] = {}


def subject_key(kind: str, subject: str) -> dict[str, str]:
    """The idempotency key of an event: what kind of thing happened, and to what (instance, volume, policy, group)."""
    return {"kind": kind, "subject": subject}


def persistence_store(table_name: str | None = None) -> DynamoDBPersistenceLayer:
    """The DynamoDB persistence layer for ``table_name`` (default: ``IDEMPOTENCY_TABLE``), one per container."""
    table = table_name or require_env("IDEMPOTENCY_TABLE")
    if table not in _stores:
        _stores[table] = DynamoDBPersistenceLayer(table_name=table, boto3_client=clients.get("dynamodb"))
    return _stores[table]


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
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    return idempotent_function(
        function,
        data_keyword_argument="key",
        persistence_store=persistence_store(),
        config=config,
        key_prefix=key_prefix,
    )


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
