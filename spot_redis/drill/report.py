"""What an interruption drill measured: read from the writer's log, printed as a table and as one JSON line.

The figures are defined once, here, for the lab drill and the drill against a stack alike:
- acked_writes: writes Redis acknowledged; lost_writes: those missing on the replacement;
- loss_window_s: from the last write that survived to the last acknowledged one (0 when none was lost);
- rto_s: from the interruption (the notice, or the kill) to the first write the replacement acknowledged;
- drain_s: from the notice to the data volume detached (None without a notice).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Ack:
    seq: int
    at: float  # seconds since the epoch
    address: str


def read_acks(path: Path) -> list[Ack]:
    """The writer's log; a last line cut short by a kill is ignored."""
    acks = []
    for line in path.read_text().splitlines():
        try:
            acks.append(Ack(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return acks


def loss_window_s(acks: Iterable[Ack], missing: set[int]) -> float:
    acks = sorted(acks, key=lambda a: a.at)
    lost = [a for a in acks if a.seq in missing]
    if not lost:
        return 0.0
    survived_before = [a for a in acks if a.seq not in missing and a.at <= lost[0].at]
    start = survived_before[-1].at if survived_before else lost[0].at
    return round(lost[-1].at - start, 3)


def rto_s(acks: Iterable[Ack], interrupted_at: float, new_address: str) -> float | None:
    first = min((a.at for a in acks if a.address == new_address and a.at >= interrupted_at), default=None)
    return None if first is None else round(first - interrupted_at, 2)


@dataclass
class DrillReport:
    variant: str
    old_host: str
    new_host: str
    acked_writes: int
    lost_writes: int
    loss_window_s: float
    drain_s: float | None
    rto_s: float | None
    dataset: str | None
    warmup_tasks_started: int
    slack_titles: list[str] = field(default_factory=list)
    keys_before_missing: int = 0  # keys written before the drill (by anyone) missing on the replacement
    boot_steps: dict[str, float] = field(default_factory=dict)  # the replacement's boot, step by step (seconds)
    timeline: dict[str, float] = field(default_factory=dict)  # seconds from the interruption to each milestone

    def table(self) -> str:
        lists = ("slack_titles", "boot_steps", "timeline")
        rows = [(name, value) for name, value in asdict(self).items() if name not in lists]
        rows += [(f"  boot: {step}", seconds) for step, seconds in self.boot_steps.items()]
        rows += [(f"  at +s: {milestone}", seconds) for milestone, seconds in self.timeline.items()]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {'-' if value is None else value}" for name, value in rows]
        lines.append("slack (in order):")
        lines += [f"  {title}" for title in self.slack_titles] or ["  (nothing)"]
        return "\n".join(lines)

    def json_line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))
