"""The monthly cost of a stack with the valkey-serverless engine (spot-redis:engine), line by line.

Pure, as model.py: the configuration (its usage limits), a region's prices, the measured dataset size and the stated
request rate in; an `Estimate` out (rendered by render.py as the Spot host's is). ElastiCache Serverless bills:

- data stored, in GB-hours, never less than SERVERLESS_MINIMUM_GB, never more than cacheMaxDataGb (the cache stops
  growing there: it evicts keys or refuses writes);
- ECPUs: a simple command of up to 1 KB is 1 ECPU (larger ones one per KB); the requests' ECPUs, never more than
  cacheMaxEcpuPerSecond allows (the cache throttles above it);
- snapshot storage: the retained daily snapshots, each about the dataset.

The cache runs all month: it cannot be stopped at night. The rest of the stack (Cloud Map, the Lambdas and queues) is
the Spot host stack's, priced by model.py's own lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import StackConfig
from spot_redis.cost.hours import ALWAYS_ON_HOURS
from spot_redis.cost.model import (
    SERVERLESS_MINIMUM_GB,
    Alternative,
    Assumptions,
    Component,
    Estimate,
    Resource,
    _Prices,
    cloud_map,
    glue,
)
from spot_redis.cost.prices import PriceError

SECONDS_A_MONTH = ALWAYS_ON_HOURS * 3600
CACHE_ALARMS = 2  # infra/serverless.py's usage-limit alarms (spot_redis.events.CACHE_ALARMS)


@dataclass(frozen=True)
class Workload:
    """What the estimate cannot read from the configuration; both are printed with the result."""

    dataset_gb: float = SERVERLESS_MINIMUM_GB  # measured: the host's used_memory_dataset, or BytesUsedForCache
    requests_per_second: float = 0.0  # the month's average
    ecpu_per_request: float = 1.0  # a GET or SET of up to 1 KB


def _check(workload: Workload) -> None:
    if workload.dataset_gb < 0:
        raise PriceError(f"--dataset-gb {workload.dataset_gb:g} must not be negative")
    if workload.requests_per_second < 0:
        raise PriceError(f"--requests-per-second {workload.requests_per_second:g} must not be negative")
    if workload.ecpu_per_request <= 0:
        raise PriceError(f"--ecpu-per-request {workload.ecpu_per_request:g} must be more than 0")


def estimate(
    config: StackConfig,
    region_prices: dict[str, Any],
    specs: dict[str, Any],
    workload: Workload | None = None,
    assumptions: Assumptions | None = None,
) -> Estimate:
    workload, assumptions = workload or Workload(), assumptions or Assumptions()
    if config.cache is None:
        raise PriceError("spot-redis:engine is not valkey-serverless: the Spot host's estimate applies")
    _check(workload)
    cache, price = config.cache, _Prices(config.region, region_prices)
    stored_gb = min(max(workload.dataset_gb, SERVERLESS_MINIMUM_GB), cache.max_data_gb)
    ecpus = min(workload.requests_per_second * workload.ecpu_per_request, cache.max_ecpu_per_second) * SECONDS_A_MONTH
    snapshot_gb = config.snapshot_retain_count * min(workload.dataset_gb, cache.max_data_gb)
    gb_hour, ecpu_million = price("elasticacheServerlessValkeyGbHour"), price("elasticacheServerlessValkeyEcpuMillion")
    resources = (
        Resource(
            f"Valkey Serverless cache (at most {cache.max_data_gb} GB, {cache.max_ecpu_per_second:,} ECPU/s)",
            "aws_elasticache_serverless_cache",
            (
                Component(
                    f"Data stored ({stored_gb:g} GB all month)",
                    "GB-hours",
                    stored_gb * ALWAYS_ON_HOURS,
                    gb_hour,
                    price.source("elasticacheServerlessValkeyGbHour"),
                ),
                Component(
                    "ElastiCache Processing Units",
                    "1M ECPUs",
                    ecpus / 1e6,
                    ecpu_million,
                    price.source("elasticacheServerlessValkeyEcpuMillion"),
                ),
            ),
        ),
        Resource(
            f"Cache snapshots (daily, {config.snapshot_retain_count} kept)",
            "aws_elasticache_serverless_cache",
            (
                Component(
                    "Snapshot storage",
                    "GB",
                    snapshot_gb,
                    price("elasticacheSnapshotGbMonth"),
                    price.source("elasticacheSnapshotGbMonth"),
                ),
            ),
        ),
        cloud_map(config, price, assumptions),
        glue(price, assumptions, extra_alarms=CACHE_ALARMS),
    )
    total = sum(resource.monthly_cost for resource in resources)
    node = _node_holding(workload.dataset_gb, specs["elasticacheNodes"], region_prices.get("elasticacheNodeHour", {}))
    node_hour = price("elasticacheNodeHour", node)
    cap = (cache.max_data_gb * gb_hour * ALWAYS_ON_HOURS) + cache.max_ecpu_per_second * SECONDS_A_MONTH / 1e6 * (
        ecpu_million
    )
    alternatives = (
        Alternative("this stack (Valkey Serverless)", ALWAYS_ON_HOURS, total, "the lines above"),
        Alternative(
            "the same at its usage limits",
            ALWAYS_ON_HOURS,
            total - resources[0].monthly_cost + cap,
            f"{cache.max_data_gb} GB stored and {cache.max_ecpu_per_second:,} ECPU/s all month: the most it can bill",
        ),
        Alternative(
            f"ElastiCache {node}",
            ALWAYS_ON_HOURS,
            ALWAYS_ON_HOURS * node_hour,
            f"${node_hour}/h; the smallest node that holds {workload.dataset_gb:g} GB; one node, no replica",
        ),
    )
    over = workload.dataset_gb > cache.max_data_gb
    return Estimate(
        stack=config.stack,
        region=config.region,
        hours=ALWAYS_ON_HOURS,
        hours_label="a serverless cache runs all month",
        instance_type="-",
        elasticache_node=node,
        resources=resources,
        alternatives=alternatives,
        assumptions=(
            f"dataset: {workload.dataset_gb:g} GB (--dataset-gb, measured: the host's used_memory_dataset or the "
            f"cache's BytesUsedForCache); billed at least {SERVERLESS_MINIMUM_GB * 1000:.0f} MB"
            + (
                f"; MORE than cacheMaxDataGb {cache.max_data_gb}: the cache would evict or refuse writes"
                if over
                else ""
            ),
            f"requests: {workload.requests_per_second:g} a second on average all month (--requests-per-second), "
            f"{workload.ecpu_per_request:g} ECPU each (--ecpu-per-request: 1 for a command of up to 1 KB)",
            f"snapshots: {config.snapshot_retain_count} daily snapshots, each the size of the dataset",
            f"Cloud Map: {assumptions.dns_queries_millions:g} million DNS queries a month",
            *assumptions.describe()[2:3],
        ),
        price_dates=tuple(sorted(price.dates)),
    )


def _node_holding(dataset_gb: float, nodes: dict[str, float], priced: dict[str, Any]) -> str:
    fitting = sorted((memory, name) for name, memory in nodes.items() if memory >= dataset_gb and name in priced)
    if not fitting:
        raise PriceError(f"no priced ElastiCache node holds {dataset_gb:g} GB")
    return fitting[0][1]
