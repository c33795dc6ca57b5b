"""What a handler gets from its environment: settings, the clock and AWS clients, each replaceable in tests.

Shared by every function (notify, warmup, capacity), so that none keeps its own copy of these:

- :func:`require_env` reads a setting (``STACK_NAME``, ``IDEMPOTENCY_TABLE``, ...) and fails clearly when it is unset;
  :func:`require_env_list` reads a comma-separated one. Functions read their settings at each invocation (it costs
  nothing), so that a test sets them with the environment alone.
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


class SettingError(RuntimeError):
    """An environment variable the function needs is unset or wrong: a deployment error, not an event error, so it
    is raised (and shows in the function's error metrics) rather than logged as a malformed event."""


class MissingSettingError(SettingError):
    """An environment variable the function needs is not set."""


def require_env(name: str) -> str:
    """The value of environment variable ``name``; :class:`MissingSettingError` when unset or blank."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingSettingError(f"environment variable {name} is not set")
    return value


def optional_env(name: str) -> str:
    """The value of environment variable ``name``, stripped; "" when unset."""
    return os.environ.get(name, "").strip()


def require_env_list(name: str) -> tuple[str, ...]:
    """A comma-separated environment variable as its non-blank items; :class:`MissingSettingError` when it lists
    nothing."""
    values = tuple(item.strip() for item in require_env(name).split(",") if item.strip())
    if not values:
        raise MissingSettingError(f"environment variable {name} lists nothing")
    return values


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """Environment variable ``name``, one of ``choices`` (``default`` when unset); :class:`SettingError` otherwise."""
    value = optional_env(name) or default
    if value not in choices:
        raise SettingError(f"environment variable {name} is {value!r}, not one of {', '.join(choices)}")
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
