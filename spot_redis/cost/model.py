"""The monthly cost of one stack configuration, line by line, and what the team would pay instead.

Pure: a `StackConfig`, a region's prices (see prices.py), the hours a month the host runs and the stated assumptions
in; `Estimate` out. Nothing here reads a file or asks AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra import volume_size
from infra.config import StackConfig
from infra.schedule import SNAPSHOT_INTERVALS, WorkingHours, _utc_snapshot_slots
from spot_redis.cost.hours import ALWAYS_ON_HOURS
from spot_redis.cost.prices import PriceError

ROOT_VOLUME_GIB = 8  # infra/compute.py's ROOT_VOLUME_GIB (a test keeps them equal)
MAXMEMORY_FRACTION = volume_size.maxmemory_fraction()  # the redis role's redis_maxmemory_fraction
FARGATE_VCPU = 1
FARGATE_MEMORY_GB = 2
SERVERLESS_MINIMUM_GB = 0.1  # ElastiCache Serverless for Valkey meters at least 100 MB of data


@dataclass(frozen=True)
class Assumptions:
    """What the estimate cannot know from the configuration; every one is printed with the result."""

    snapshot_change_rate: float = 0.10  # share of the data volume's blocks that change per running day
    dns_queries_millions: float = 0.1  # Cloud Map name look-ups a month (the client caches the answer for its TTL)
    lambda_invocations: int = 1_000  # notify, capacity and warm-up together, a month
    lambda_seconds: float = 1.0  # per invocation
    lambda_memory_gb: float = 0.125  # 128 MB
    sqs_requests: int = 10_000  # the failed-events queue's polls and messages
    dynamodb_writes: int = 2_000  # the idempotency table
    dynamodb_reads: int = 2_000
    sns_requests: int = 100  # e-mail when Slack does not answer
    log_gb: float = 0.05  # Lambda and warm-up logs ingested a month
    serverless_ecpu_millions: float = 0.0  # ElastiCache Serverless at its minimum: no ECPU minimum, only storage

    def describe(self) -> list[str]:
        return [
            f"snapshots: the first holds the data Redis may write (RDB + AOF of a full maxmemory), each later one "
            f"the blocks changed since, {self.snapshot_change_rate:.0%} of the volume per running day "
            "(--snapshot-change-rate)",
            f"Cloud Map: {self.dns_queries_millions:g} million DNS queries a month",
            f"serverless glue: {self.lambda_invocations:,} Lambda invocations of {self.lambda_seconds:g} s at "
            f"{self.lambda_memory_gb * 1024:.0f} MB, {self.sqs_requests:,} SQS requests, "
            f"{self.dynamodb_writes:,} DynamoDB writes and {self.dynamodb_reads:,} reads, {self.sns_requests:,} SNS "
            f"publishes, {self.log_gb:g} GB of logs a month; free tiers not deducted; EventBridge's AWS service "
            "events are free",
            "ElastiCache: one on-demand node, Redis OSS, no replica, 730 h (a node cannot be stopped); Serverless "
            f"(Valkey) at its minimum: {SERVERLESS_MINIMUM_GB * 1000:.0f} MB of data all month, "
            f"{self.serverless_ecpu_millions:g} million ECPUs",
            f"Fargate: one task of {FARGATE_VCPU} vCPU and {FARGATE_MEMORY_GB} GB for the same hours, without the "
            "storage and address it would also need",
        ]


@dataclass(frozen=True)
class Component:
    name: str
    unit: str
    monthly_quantity: float
    price: float  # USD per unit
    source: str = ""

    @property
    def monthly_cost(self) -> float:
        return self.monthly_quantity * self.price


@dataclass(frozen=True)
class Resource:
    name: str
    resource_type: str
    components: tuple[Component, ...]
    while_running: bool = False  # billed for the host's hours (the month's hours in, its cost out), not by the month

    @property
    def monthly_cost(self) -> float:
        return sum(component.monthly_cost for component in self.components)


@dataclass(frozen=True)
class Alternative:
    name: str
    hours: float
    monthly_cost: float
    how: str


@dataclass(frozen=True)
class Estimate:
    stack: str
    region: str
    hours: float
    hours_label: str
    instance_type: str
    elasticache_node: str
    resources: tuple[Resource, ...]
    alternatives: tuple[Alternative, ...]
    assumptions: tuple[str, ...]
    price_dates: tuple[str, ...]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def monthly_cost(self) -> float:
        return sum(resource.monthly_cost for resource in self.resources)

    def cost_so_far(self, share_of_month: float) -> float:
        """With ``hours`` the host's hours so far this month: its lines as they are, the monthly ones for the share of
        the month gone."""
        return sum(r.monthly_cost * (1 if r.while_running else share_of_month) for r in self.resources)

    @property
    def elasticache_cost(self) -> float:
        return next(a.monthly_cost for a in self.alternatives if a.name.startswith("ElastiCache cache."))


class _Prices:
    """A region's entries, each looked up by key (and name): a missing one is a PriceError naming both."""

    def __init__(self, region: str, entries: dict[str, Any]):
        self.region = region
        self.entries = entries
        self.dates: set[str] = set()

    def __call__(self, key: str, name: str | None = None) -> float:
        entry = self.entries.get(key)
        if name is not None:
            entry = (entry or {}).get(name)
        if not entry or "usd" not in entry:
            what = f"{key} {name}" if name else key
            raise PriceError(f"no price for {what} in {self.region} in the price source")
        self.dates.add(entry.get("date", "?"))
        return float(entry["usd"])

    def source(self, key: str, name: str | None = None) -> str:
        entry = self.entries.get(key, {})
        return (entry.get(name, {}) if name else entry).get("source", "")


def snapshots_per_running_day(hours: WorkingHours | None, every_hours: int) -> float:
    """How many DLM snapshots a running day takes (those of the stack's own crons, DST-safe ones only)."""
    if every_hours not in SNAPSHOT_INTERVALS:
        raise PriceError(f"snapshot interval {every_hours} is not one of {SNAPSHOT_INTERVALS}")
    if hours is None:
        return 24 / every_hours
    return len(_utc_snapshot_slots(hours, every_hours)) / len(hours.days)


def snapshot_gb(config: StackConfig, volume_gib: int, largest_memory_gib: float, change_rate: float) -> float:
    """GB-months the retained snapshots hold: a first full copy of the data, plus the changes the others keep."""
    per_day = snapshots_per_running_day(config.working_hours, config.snapshot_every_hours)
    retained_days = config.snapshot_retain_count / per_day
    base = min(volume_gib, 2 * largest_memory_gib * MAXMEMORY_FRACTION)
    return base + change_rate * volume_gib * retained_days


def volume_assumption(config: StackConfig, largest_memory_gib: float) -> tuple[str, ...]:
    if config.data_volume_size_gib is not None:
        return (f"data volume: {config.data_volume_size_gib} GiB as configured (dataVolumeSizeGib)",)
    return (f"data volume: derived, {volume_size.need(largest_memory_gib).describe()}",)


def data_volume_gib(config: StackConfig, largest_memory_gib: float) -> int:
    """The configured size, else the one the stack derives (infra/volume_size.py)."""
    return config.data_volume_size_gib or volume_size.need(largest_memory_gib).size_gib


def matching_cache_node(host_memory_gib: float, nodes: dict[str, float], priced: dict[str, Any]) -> str:
    """The smallest priced ElastiCache node that holds what the host's Redis may hold (its maxmemory)."""
    need = host_memory_gib * MAXMEMORY_FRACTION
    fitting = sorted((memory, name) for name, memory in nodes.items() if memory >= need and name in priced)
    if not fitting:
        raise PriceError(f"no priced ElastiCache node holds {need:.2f} GiB")
    return fitting[0][1]


def cloud_map(config: StackConfig, price: _Prices, a: Assumptions) -> Resource:
    """The namespace and its one registration: the Spot host's A record, or the cache's CNAME. A namespace that
    existed before the stack (existingNamespace) is not ours to pay for."""
    zone = Component(
        "Hosted zone", "months", 1, price("route53HostedZoneMonth"), price.source("route53HostedZoneMonth")
    )
    return Resource(
        f"Cloud Map namespace {config.namespace}",
        "aws_service_discovery_private_dns_namespace",
        (
            *([] if config.existing_namespace else [zone]),
            Component(
                "Registered instance",
                "months",
                1,
                price("cloudMapInstanceMonth"),
                price.source("cloudMapInstanceMonth"),
            ),
            Component(
                "DNS queries",
                "1M queries",
                a.dns_queries_millions,
                price("route53QueriesMillion"),
                price.source("route53QueriesMillion"),
            ),
        ),
    )


def glue(price: _Prices, a: Assumptions, extra_alarms: int = 0) -> Resource:
    """The Lambdas, rules, queue, table, topic and logs, and the failed-events alarm (plus ``extra_alarms``)."""
    alarms = "CloudWatch alarm (failed events)" if not extra_alarms else "CloudWatch alarms (failed events and more)"
    return Resource(
        f"Serverless glue (Lambda, EventBridge, SQS, DynamoDB, SNS, logs, alarm{'s' if extra_alarms else ''})",
        "aws_lambda_function",
        (
            Component("Lambda requests", "1M requests", a.lambda_invocations / 1e6, price("lambdaRequestsMillion")),
            Component(
                "Lambda duration (arm64)",
                "GB-seconds",
                a.lambda_invocations * a.lambda_seconds * a.lambda_memory_gb,
                price("lambdaArmGbSecond"),
            ),
            Component("EventBridge AWS service events", "events", a.lambda_invocations, 0.0, "free"),
            Component("SQS requests", "1M requests", a.sqs_requests / 1e6, price("sqsRequestsMillion")),
            Component("DynamoDB writes", "1M WRU", a.dynamodb_writes / 1e6, price("dynamodbWriteMillion")),
            Component("DynamoDB reads", "1M RRU", a.dynamodb_reads / 1e6, price("dynamodbReadMillion")),
            Component("SNS publishes", "1M requests", a.sns_requests / 1e6, price("snsRequestsMillion")),
            Component("CloudWatch Logs ingestion", "GB", a.log_gb, price("cloudwatchLogsIngestGb")),
            Component(alarms, "alarms", 1 + extra_alarms, price("cloudwatchAlarmMonth")),
        ),
    )


def estimate(
    config: StackConfig,
    region_prices: dict[str, Any],
    specs: dict[str, Any],
    hours: float,
    hours_label: str,
    assumptions: Assumptions = Assumptions(),
) -> Estimate:
    price = _Prices(config.region, region_prices)
    instance_type = config.instance_types[0]
    memories = []
    for name in config.instance_types:
        if name not in specs["instances"]:
            raise PriceError(f"instance type {name} is not in the price file's instance table (vCPUs, memory)")
        memories.append(specs["instances"][name][1])
    smallest, largest = min(memories), max(memories)
    volume_gib = data_volume_gib(config, largest)
    a = assumptions
    spot, on_demand = price("ec2SpotHour", instance_type), price("ec2OnDemandHour", instance_type)
    gp3 = price("ebsGp3GbMonth")
    ipv4 = price("publicIpv4Hour") if config.host_public_ip else 0.0
    root_gb_months = ROOT_VOLUME_GIB * hours / ALWAYS_ON_HOURS
    resources = (
        Resource(
            f"Spot host ({instance_type}, the first of instanceTypes)",
            "aws_autoscaling_group",
            (
                Component(
                    f"Instance usage (Linux/UNIX, spot, {instance_type})",
                    "hours",
                    hours,
                    spot,
                    price.source("ec2SpotHour", instance_type),
                ),
            ),
            while_running=True,
        ),
        Resource(
            f"Data volume ({volume_gib} GiB, always kept)",
            "aws_ebs_volume",
            (Component("Storage (gp3)", "GB", volume_gib, gp3, price.source("ebsGp3GbMonth")),),
        ),
        Resource(
            f"Root volume ({ROOT_VOLUME_GIB} GiB, while the host runs)",
            "aws_launch_template",
            (Component("Storage (gp3)", "GB", root_gb_months, gp3, price.source("ebsGp3GbMonth")),),
            while_running=True,
        ),
        Resource(
            f"Snapshots (every {config.snapshot_every_hours} h, {config.snapshot_retain_count} kept)",
            "aws_dlm_lifecycle_policy",
            (
                Component(
                    "Snapshot storage",
                    "GB",
                    snapshot_gb(config, volume_gib, largest, a.snapshot_change_rate),
                    price("ebsSnapshotGbMonth"),
                    price.source("ebsSnapshotGbMonth"),
                ),
            ),
        ),
        *(
            [
                Resource(
                    "Public IPv4 address (while the host runs)",
                    "aws_autoscaling_group",
                    (Component("Public IPv4 address", "hours", hours, ipv4, price.source("publicIpv4Hour")),),
                    while_running=True,
                )
            ]
            if config.host_public_ip
            else []
        ),
        cloud_map(config, price, a),
        glue(price, a),
    )
    total = sum(resource.monthly_cost for resource in resources)
    node = matching_cache_node(smallest, specs["elasticacheNodes"], region_prices.get("elasticacheNodeHour", {}))
    always_extra = (ALWAYS_ON_HOURS - hours) * (spot + ipv4 + ROOT_VOLUME_GIB * gp3 / ALWAYS_ON_HOURS)
    fargate = FARGATE_VCPU * price("fargateVcpuHour") + FARGATE_MEMORY_GB * price("fargateGbHour")
    fargate_spot = FARGATE_VCPU * price("fargateSpotVcpuHour") + FARGATE_MEMORY_GB * price("fargateSpotGbHour")
    serverless = SERVERLESS_MINIMUM_GB * ALWAYS_ON_HOURS * price(
        "elasticacheServerlessValkeyGbHour"
    ) + a.serverless_ecpu_millions * price("elasticacheServerlessValkeyEcpuMillion")
    alternatives = (
        Alternative("this stack (Spot)", hours, total, "the lines above"),
        Alternative(
            "EC2 on-demand, same hours",
            hours,
            total + hours * (on_demand - spot),
            f"{instance_type} on-demand ${on_demand}/h instead of Spot ${spot}/h",
        ),
        Alternative(
            "the same host 24/7 (Spot)",
            ALWAYS_ON_HOURS,
            total + always_extra,
            "Spot, root volume and IPv4 address for 730 h"
            if config.host_public_ip
            else "Spot and root volume for 730 h",
        ),
        Alternative(
            f"ElastiCache {node}",
            ALWAYS_ON_HOURS,
            ALWAYS_ON_HOURS * price("elasticacheNodeHour", node),
            f"${price('elasticacheNodeHour', node)}/h; holds the {smallest * MAXMEMORY_FRACTION:g} GiB maxmemory of "
            f"a {smallest:g} GiB host; cannot be stopped at night",
        ),
        Alternative(
            "ElastiCache Serverless (Valkey), minimum",
            ALWAYS_ON_HOURS,
            serverless,
            f"{SERVERLESS_MINIMUM_GB * 1000:.0f} MB x 730 h at ${price('elasticacheServerlessValkeyGbHour')}/GB-h",
        ),
        Alternative(
            f"Fargate {FARGATE_VCPU} vCPU {FARGATE_MEMORY_GB} GB, same hours",
            hours,
            hours * fargate,
            f"${fargate:.5f}/h",
        ),
        Alternative(
            f"Fargate Spot {FARGATE_VCPU} vCPU {FARGATE_MEMORY_GB} GB, same hours",
            hours,
            hours * fargate_spot,
            f"${fargate_spot:.5f}/h",
        ),
    )
    return Estimate(
        stack=config.stack,
        region=config.region,
        hours=hours,
        hours_label=hours_label,
        instance_type=instance_type,
        elasticache_node=node,
        resources=resources,
        alternatives=alternatives,
        assumptions=(*volume_assumption(config, largest), *a.describe()),
        price_dates=tuple(sorted(price.dates)),
    )
