"""The interruption watcher: polls IMDS for a Spot interruption notice and a rebalance recommendation.

- A notice (also one whose time is already past) is handed to on_notice once. It is remembered in
  <state dir>/drained-<instance id> before on_notice runs, so that a restarted watcher does not drain twice; after it
  the watcher idles rather than exits, so that systemd does not restart it in a loop.
- A rebalance recommendation is handed to on_rebalance once per distinct noticeTime.
- IMDS not answering is logged (not every tick) and tried again at the next tick: it is never a notice.
  A malformed answer is logged and taken for no notice. A callback that raises is logged; the loop goes on.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spot_redis.agent.imds import ImdsUnavailable, InterruptionNotice, MalformedMetadata, RebalanceRecommendation

log = logging.getLogger("spot-redis-agent")

STATE_DIR = Path("/var/lib/spot-redis")
UNAVAILABLE_LOG_EVERY_S = 300.0


class Watcher:
    def __init__(
        self,
        imds: Any,
        on_notice: Callable[[InterruptionNotice], Any],
        on_rebalance: Callable[[RebalanceRecommendation], Any],
        *,
        instance_id: str,
        interval_s: float = 2.0,
        sleep: Callable[[float], Any] = time.sleep,
        state_dir: Path = STATE_DIR,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.imds = imds
        self.on_notice = on_notice
        self.on_rebalance = on_rebalance
        self.interval_s = interval_s
        self.sleep = sleep
        self.clock = clock
        self.drained_marker = Path(state_dir) / f"drained-{instance_id}"
        self.drained = self.drained_marker.exists()
        self.rebalances_seen: set[str] = set()
        self._failures = 0
        self._failure_logged_at: float | None = None
        self._malformed_logged: set[str] = set()

    def run(self, stop_after: int | None = None) -> None:
        """Poll every interval_s, for ever (or stop_after polls); after a notice, idle."""
        if self.drained:
            log.info("this instance has drained already (%s): idling", self.drained_marker)
        polls = itertools.count() if stop_after is None else range(stop_after)
        for _ in polls:
            try:
                self.poll_once()
            except Exception:  # the watcher is the host's only ear for a notice: it must keep listening
                log.exception("watcher poll failed")
            self.sleep(self.interval_s)

    def poll_once(self) -> None:
        if self.drained:
            return
        try:
            notice = self._unless_malformed(self.imds.interruption_notice)
            recommendation = None if notice else self._unless_malformed(self.imds.rebalance_recommendation)
        except ImdsUnavailable as error:
            self._note_unavailable(error)
            return
        self._note_available()
        if notice is not None:
            self._drain(notice)
        elif recommendation is not None:
            self._rebalance(recommendation)

    def _unless_malformed(self, question: Callable[[], Any]) -> Any:
        """The answer, or None for one that is malformed: logged once per distinct fault, then taken for nothing."""
        try:
            return question()
        except MalformedMetadata as error:
            if str(error) not in self._malformed_logged:
                self._malformed_logged.add(str(error))
                log.error("ignoring a malformed answer from IMDS: %s", error)
            return None

    def _drain(self, notice: InterruptionNotice) -> None:
        """Drain, then remember it: a watcher restarted in the middle of a drain (killed, or restarted by a push)
        drains again, and every drain step is safe to repeat."""
        self.drained = True
        log.warning("Spot interruption notice: %s at %s; draining", notice.action, notice.time.isoformat())
        self._call(self.on_notice, notice)
        try:
            self._remember_drain(notice)
        except OSError as error:
            log.error("could not remember the drain in %s: %s", self.drained_marker, error)

    def _remember_drain(self, notice: InterruptionNotice) -> None:
        self.drained_marker.parent.mkdir(parents=True, exist_ok=True)
        partial = self.drained_marker.with_name(f".{self.drained_marker.name}.partial")
        partial.write_text(json.dumps({"action": notice.action, "time": notice.time.isoformat()}) + "\n")
        os.replace(partial, self.drained_marker)

    def _rebalance(self, recommendation: RebalanceRecommendation) -> None:
        notice_time = recommendation.notice_time.isoformat()
        if notice_time in self.rebalances_seen:
            return
        self.rebalances_seen.add(notice_time)
        log.warning("Spot rebalance recommendation noticed at %s", notice_time)
        self._call(self.on_rebalance, recommendation)

    def _call(self, callback: Callable[[Any], Any], argument: Any) -> None:
        try:
            callback(argument)
        except Exception:  # a failed drain or announcement must not stop the watcher
            log.exception("%s failed", getattr(callback, "__name__", callback))

    def _note_unavailable(self, error: ImdsUnavailable) -> None:
        self._failures += 1
        now = self.clock()
        if self._failure_logged_at is None or now - self._failure_logged_at >= UNAVAILABLE_LOG_EVERY_S:
            self._failure_logged_at = now
            log.warning("IMDS unavailable (%d failed polls so far), retrying: %s", self._failures, error)

    def _note_available(self) -> None:
        if self._failures:
            log.info("IMDS answers again after %d failed polls", self._failures)
        self._failures = 0
        self._failure_logged_at = None
