"""The data volume's default size: what it must hold, not a round number.

The volume holds Redis's files and, beside them, the monitoring history (Prometheus's database, Alertmanager's state).

- **Redis**: at most maxmemory of data (a fraction of the largest configured type's memory, the redis role's
  ``redis_maxmemory_fraction``), written in several copies at once at the worst moment. With AOF on
  (``auto-aof-rewrite-percentage 100``) the AOF grows to twice its base before a rewrite: 2 x maxmemory. A rewrite
  writes a new base (1 x) while the old files stay, and ``dump.rdb`` (1 x) is on the disk too: 4 x maxmemory. A
  BGSAVE instead writes a temporary RDB beside the old one (2 x) with the AOF at its largest (2 x): 4 x again. Redis
  never runs the two children at once, so 4 x maxmemory is the peak. Files on disk are usually smaller than the data
  in memory (RDB compresses): the bound is generous by that much.
- **Monitoring**: Prometheus's size-based retention (the prometheus role's ``prometheus_storage_retention_size``)
  plus a fifth for what it holds beyond its blocks before the retention catches up (the WAL, the head block) and for
  Alertmanager's few megabytes.
- **The file system**: ext4 keeps 5% for root (Redis and Prometheus do not run as root) and about 2% for its own
  metadata, so only 93% of the volume is usable.

A stack that sets ``dataVolumeSizeGib`` gets that size; smaller than this need, `pulumi preview` warns.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from infra.role_defaults import role_default

REDIS_FILE_COPIES = 4  # peak copies of the dataset on disk: see the module's docstring
MONITORING_HEADROOM = 1.2  # Prometheus's WAL and head block beyond its retention size, and Alertmanager's state
USABLE_SHARE = 0.93  # of an ext4 volume: 5% reserved for root, about 2% of metadata
_SIZE = re.compile(r"^(?P<number>\d+)(?P<unit>MB|GB)$")


def maxmemory_fraction() -> float:
    return float(role_default("redis", "redis_maxmemory_fraction"))


def size_gib(size: str) -> float:
    """A Prometheus size ("512MB", "1GB"; Prometheus's units are powers of 1024) in GiB."""
    match = _SIZE.match(str(size))
    if not match:
        raise ValueError(f"{size!r} is not a size such as 512MB or 1GB")
    number = int(match["number"])
    return number if match["unit"] == "GB" else number / 1024


def monitoring_retention_gib() -> float:
    return size_gib(str(role_default("prometheus", "prometheus_storage_retention_size")))


@dataclass(frozen=True)
class VolumeNeed:
    """What the data volume must hold for a host of ``largest_memory_gib``, term by term (GiB)."""

    largest_memory_gib: float
    maxmemory_gib: float
    redis_gib: float
    monitoring_gib: float

    @property
    def size_gib(self) -> int:
        return math.ceil((self.redis_gib + self.monitoring_gib) / USABLE_SHARE)

    def describe(self) -> str:
        return (
            f"{REDIS_FILE_COPIES} x the {self.maxmemory_gib:g} GiB maxmemory of a {self.largest_memory_gib:g} GiB "
            f"host ({self.redis_gib:g} GiB) + monitoring {self.monitoring_gib:g} GiB, over the {USABLE_SHARE:.0%} "
            f"of ext4 that is usable: {self.size_gib} GiB"
        )


def need(largest_memory_gib: float) -> VolumeNeed:
    maxmemory = round(largest_memory_gib * maxmemory_fraction(), 3)
    return VolumeNeed(
        largest_memory_gib=largest_memory_gib,
        maxmemory_gib=maxmemory,
        redis_gib=round(REDIS_FILE_COPIES * maxmemory, 3),
        monitoring_gib=round(MONITORING_HEADROOM * monitoring_retention_gib(), 3),
    )
