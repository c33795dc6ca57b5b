"""What a handler gets from its environment: settings, the clock and AWS clients, each replaceable in tests.

- :func:`require_env` reads a setting (``STACK_NAME``, ``IDEMPOTENCY_TABLE``, ...) and fails clearly when it is unset.
- :data:`clock` is a :class:`Clock`; handlers call ``clock.now()`` (aware UTC). Tests assign ``clock.fixed = dt``.
- :data:`clients` is a :class:`Clients`: ``clients.get("ec2")`` returns one boto3 client per service per container
  (created on first use, with short timeouts and standard retries). ``clients.reset()`` forgets them (tests);
  ``clients.session`` (a ``boto3.session.Session``, default None: boto3's default session) is where they come from.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})


class MissingSettingError(RuntimeError):
    """An environment variable the function needs is not set (a deployment error, not an event error)."""


def require_env(name: str) -> str:
    """The value of environment variable ``name``; :class:`MissingSettingError` when unset or blank."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingSettingError(f"environment variable {name} is not set")
    return value


class Clock:
    """The current time, aware and in UTC; ``fixed`` (when set) freezes it for tests."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def now(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)


class Clients:
    """boto3 clients cached per service for the life of the container."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self.session: boto3.session.Session | None = None

    def get(self, service: str) -> Any:
        if service not in self._clients:
            factory = self.session.client if self.session is not None else boto3.client
            self._clients[service] = factory(service, config=AWS_CONFIG)  # type: ignore[call-overload]
        return self._clients[service]

    def set(self, service: str, client: Any) -> None:
        """Use ``client`` for ``service`` (a test double, or a client built differently)."""
        self._clients[service] = client

    def reset(self) -> None:
        self._clients.clear()


clock = Clock()
clients = Clients()
