"""Putting the host's own events on EventBridge, shaped by the contract in spot_redis.events."""

from __future__ import annotations

import logging
from typing import Any

from spot_redis.events import EventKind, entry

log = logging.getLogger("spot-redis-agent")


class Announcer:
    """Sends events about one host of one stack. ``send`` raises on failure; ``try_send`` logs and returns False."""

    def __init__(self, events_client: Any, stack: str, instance_id: str):
        self.events = events_client
        self.stack = stack
        self.instance_id = instance_id

    def send(self, kind: EventKind, **detail: Any) -> None:
        about = {"instance-id": self.instance_id, "stack": self.stack}
        response = self.events.put_events(Entries=[entry(kind, {**about, **detail})])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused {kind.detail_type}: {response.get('Entries')}")
        log.info("announced %s", kind.detail_type)

    def try_send(self, kind: EventKind, **detail: Any) -> bool:
        try:
            self.send(kind, **detail)
        except Exception as error:
            log.error("could not announce %s: %s", kind.detail_type, error)
            return False
        return True
