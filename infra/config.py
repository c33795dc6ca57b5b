"""The stack's configuration, read and validated in one place before any resource is declared.

`parse_config` is pure (plain values in, a `StackConfig` out) so that every bad value can be tested without Pulumi;
`load_config` reads the stack's `spot-redis:*` keys and hands them over. Every error names the key it is about.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.schedule import ScheduleError, WorkingHours, working_hours

NAMESPACE = "spot-redis"
REDIS_PORT = 6379
MAX_STACK_NAME = 25

DEFAULT_INSTANCE_TYPES = {
    "arm64": ("t4g.small", "t4g.medium", "m6g.medium", "m7g.medium", "c7g.large"),
    "x86_64": ("t3.small", "t3a.small", "t3.medium", "t3a.medium", "m6i.large"),
}
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3653)
# DLM's interval-based schedules take these hours only; the crons made from them keep the same choice.
SNAPSHOT_INTERVALS = (1, 2, 3, 4, 6, 8, 12, 24)

_GRAVITON_FAMILY = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)$")  # t4g, m7gd, c6gn...; g4dn (x86 GPU) does not match
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_AWS_ID = {"vpc": r"vpc-[0-9a-f]{8,17}", "subnet": r"subnet-[0-9a-f]{8,17}", "sg": r"sg-[0-9a-f]{8,17}"}
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# What serves Redis: today's Spot host, or an ElastiCache Serverless cache for Valkey (infra/serverless.py).
SPOT_HOST = "spot-host"
VALKEY_SERVERLESS = "valkey-serverless"
ENGINES = (SPOT_HOST, VALKEY_SERVERLESS)
# Keys only one engine reads. A stack that sets a key of the other engine is refused: it would be silently ignored.
ENGINE_KEYS = {
    SPOT_HOST: (
        "adminCidrs",
        "architecture",
        "instanceTypes",
        "dataVolumeSizeGib",
        "workingHours",
        "alwaysOn",
        "snapshotEveryHours",
        "keyName",
        "onDemandFallback",
        "hostPublicIp",
        "redisLegacyAuth",  # the serverless cache's `default` user stays off
    ),
    VALKEY_SERVERLESS: (
        "cacheSubnetIds",
        "cacheMaxDataGb",
        "cacheMaxEcpuPerSecond",
        "cacheSnapshotTime",
        "cacheRestoreRdb",
    ),
}
# ElastiCache Serverless's own bounds (CreateServerlessCache: CacheUsageLimits, SnapshotRetentionLimit).
CACHE_MAX_DATA_GB = (1, 5000)
CACHE_MAX_ECPU_PER_SECOND = (1000, 15_000_000)
CACHE_SNAPSHOT_RETENTION_DAYS = 35
# The defaults cap the bill: 1 GB of data (730 GB-hours a month at most) and 1,000 ECPUs a second.
DEFAULT_CACHE_MAX_DATA_GB = 1
DEFAULT_CACHE_MAX_ECPU_PER_SECOND = 1000
DEFAULT_CACHE_SNAPSHOT_TIME = "18:00"  # UTC: 03:00 in Tokyo
_S3_RDB = re.compile(r"^(?:s3://|arn:aws[a-z-]*:s3:::)(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>\S+\.rdb)$")


class ConfigError(ValueError):
    """A stack configuration value is missing or wrong; the message starts with the full key name."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{NAMESPACE}:{key}: {reason}")
        self.key = key


@dataclass(frozen=True)
class CacheSettings:
    """The valkey-serverless engine's settings (the `cache*` keys)."""

    subnet_ids: tuple[str, ...]
    max_data_gb: int
    max_ecpu_per_second: int
    snapshot_time: str  # HH:MM, UTC
    restore_rdb_arn: str | None  # arn:aws:s3:::bucket/key.rdb: the new cache starts with this dataset


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    vpc_id: str
    subnet_id: str
    availability_zone: str
    redis_allowed_cidrs: tuple[str, ...]
    redis_allowed_security_group_ids: tuple[str, ...]
    admin_cidrs: tuple[str, ...]
    architecture: str
    instance_types: tuple[str, ...]
    data_volume_size_gib: int | None  # None: derived from the instance types (infra/volume_size.py)
    working_hours: WorkingHours | None  # None: always on
    snapshot_every_hours: int
    snapshot_retain_count: int
    namespace: str
    alert_email: str | None
    key_name: str | None
    log_retention_days: int
    warmup_image_tag: str
    on_demand_fallback: bool  # a Spot launch that fails for lack of capacity switches the group to on-demand
    warmup_public_ip: bool  # the warm-up task gets a public address (a public subnet without NAT needs it)
    host_public_ip: bool  # the host gets a public address (the same; about $3.6 a month when always on)
    existing_namespace: bool  # `namespace` exists already (shared): add the service to it, do not create it
    redis_legacy_auth: bool  # `AUTH <app password>` (no user name) logs in with the app user's rights
    engine: str = SPOT_HOST  # what serves Redis: ENGINES
    cache: CacheSettings | None = None  # the valkey-serverless engine's settings; None for spot-host

    @property
    def serverless(self) -> bool:
        return self.engine == VALKEY_SERVERLESS

    @property
    def tag(self) -> dict[str, str]:
        """The tag every resource carries; the Lambdas ignore instances without it."""
        return {f"{NAMESPACE}:stack": self.stack}

    @property
    def parameter_prefix(self) -> str:
        return f"/{NAMESPACE}/{self.stack}"

    @property
    def redis_dns_name(self) -> str:
        return f"redis.{self.namespace}"


def instance_architecture(instance_type: str) -> str:
    """arm64 for Graviton families (t4g, m7g, c6gn, a1...), x86_64 otherwise."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _GRAVITON_FAMILY.match(family) else "x86_64"


def parse_config(values: Mapping[str, Any], *, stack: str, region: str | None) -> StackConfig:
    """Validate the plain `spot-redis:*` values (camelCase keys, namespace stripped) of a stack."""
    reader = _Reader(values)
    if not region:
        raise ConfigError("region", "set aws:region (e.g. `pulumi config set aws:region ap-northeast-1`)")
    engine = reader.choice("engine", ENGINES, default=SPOT_HOST)
    _refuse_other_engines_keys(values, engine)
    serverless = engine == VALKEY_SERVERLESS
    architecture = "arm64" if serverless else reader.choice("architecture", ("arm64", "x86_64"), default="arm64")
    config = StackConfig(
        stack=_stack_name(stack),
        region=region,
        vpc_id=reader.aws_id("vpcId", "vpc"),
        subnet_id=reader.aws_id("subnetId", "subnet"),
        availability_zone=_availability_zone(reader, region),
        redis_allowed_cidrs=reader.cidrs("redisAllowedCidrs"),
        redis_allowed_security_group_ids=tuple(reader.aws_id_list("redisAllowedSecurityGroupIds", "sg")),
        admin_cidrs=() if serverless else reader.cidrs("adminCidrs"),
        architecture=architecture,
        instance_types=() if serverless else _instance_types(reader, architecture),
        data_volume_size_gib=None if serverless else reader.optional_integer("dataVolumeSizeGib", low=1, high=16384),
        working_hours=None if serverless else _working_hours(reader),
        snapshot_every_hours=24 if serverless else _snapshot_interval(reader),
        snapshot_retain_count=reader.integer(
            "snapshotRetainCount", default=7, low=1, high=CACHE_SNAPSHOT_RETENTION_DAYS if serverless else 1000
        ),
        namespace=_namespace(reader),
        alert_email=_alert_email(reader),
        key_name=None if serverless else reader.string("keyName", default=None),
        log_retention_days=_log_retention(reader),
        warmup_image_tag=reader.string("warmupImageTag", default="latest"),
        on_demand_fallback=False if serverless else reader.boolean("onDemandFallback", default=True),
        warmup_public_ip=reader.boolean("warmupPublicIp", default=True),
        host_public_ip=False if serverless else reader.boolean("hostPublicIp", default=True),
        existing_namespace=reader.boolean("existingNamespace", default=False),
        redis_legacy_auth=False if serverless else reader.boolean("redisLegacyAuth", default=False),
        engine=engine,
        cache=_cache_settings(reader) if serverless else None,
    )
    if not config.redis_allowed_cidrs and not config.redis_allowed_security_group_ids:
        raise ConfigError(
            "redisAllowedSecurityGroupIds",
            "nobody could reach Redis: name the application's security groups (or redisAllowedCidrs)",
        )
    reader.refuse_unknown()
    return config


def _refuse_other_engines_keys(values: Mapping[str, Any], engine: str) -> None:
    """A key of the other engine would be silently ignored: refused, naming the first key, every other one and the
    engine."""
    for other, keys in ENGINE_KEYS.items():
        found = [key for key in keys if other != engine and key in values]
        if found:
            others = f" (and {', '.join(found[1:])})" if found[1:] else ""
            raise ConfigError(
                found[0],
                f"a {other} setting, but spot-redis:engine is {engine}: remove it{others}, or set engine to {other}; "
                "a stack asks for one engine's settings only",
            )


def _cache_settings(reader: _Reader) -> CacheSettings:
    subnets = tuple(reader.aws_id_list("cacheSubnetIds", "subnet"))
    if len(subnets) < 2:
        raise ConfigError(
            "cacheSubnetIds",
            "name two or three subnets of vpcId in different Availability Zones: the cache replicates across them",
        )
    low, high = CACHE_MAX_DATA_GB
    max_data = reader.integer("cacheMaxDataGb", default=DEFAULT_CACHE_MAX_DATA_GB, low=low, high=high)
    low, high = CACHE_MAX_ECPU_PER_SECOND
    max_ecpu = reader.integer("cacheMaxEcpuPerSecond", default=DEFAULT_CACHE_MAX_ECPU_PER_SECOND, low=low, high=high)
    snapshot_time = reader.string(
        "cacheSnapshotTime", default=DEFAULT_CACHE_SNAPSHOT_TIME, pattern=r"([01]\d|2[0-3]):[0-5]\d"
    )
    return CacheSettings(
        subnet_ids=subnets,
        max_data_gb=max_data,
        max_ecpu_per_second=max_ecpu,
        snapshot_time=snapshot_time,
        restore_rdb_arn=_restore_rdb(reader),
    )


def restore_rdb_arn(text: str) -> str:
    """s3://bucket/key.rdb or arn:aws:s3:::bucket/key.rdb as the ARN CreateServerlessCache takes; ValueError if it is
    neither."""
    match = _S3_RDB.match(text.strip())
    if not match:
        raise ValueError(
            f"{text!r} is not an S3 object of an RDB file (s3://BUCKET/KEY.rdb or arn:aws:s3:::BUCKET/KEY.rdb)"
        )
    return f"arn:aws:s3:::{match['bucket']}/{match['key']}"


def _restore_rdb(reader: _Reader) -> str | None:
    text = reader.string("cacheRestoreRdb", default=None)
    if text is None:
        return None
    try:
        return restore_rdb_arn(text)
    except ValueError as error:
        raise ConfigError("cacheRestoreRdb", f"{error}: `spot-redis export-rdb` prints the value to set") from None


def load_config() -> StackConfig:
    """Read and validate the current stack's configuration (secrets are read by `load_secrets`)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    cfg = pulumi.Config(NAMESPACE)
    # Every key the stack sets, so that a misspelt one is refused rather than silently ignored.
    stack_keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
    keys = {key.split(":", 1)[1] for key in stack_keys if key.startswith(f"{NAMESPACE}:")} - set(SECRET_KEYS)
    values = {key: _plain_value(cfg.get(key)) for key in keys}
    return parse_config(values, stack=pulumi.get_stack(), region=pulumi.Config("aws").get("region"))


def _plain_value(text: str | None) -> Any:
    """Pulumi hands every value over as a string: objects, lists and booleans arrive as JSON. Numbers stay strings
    (the integer keys accept digits), so that a string key such as an image tag `20261122` stays a string."""
    try:
        value = json.loads(text or "")
    except ValueError:
        return text
    return value if isinstance(value, (dict, list, bool)) else text


@dataclass(frozen=True)
class StackSecrets:
    slack_webhook_url: Any  # pulumi.Output[str], secret
    heartbeat_url: Any  # pulumi.Output[str], secret


def load_secrets() -> StackSecrets:
    """The webhook URLs: required, stored encrypted in the stack (`pulumi config set --secret`)."""
    import pulumi

    cfg = pulumi.Config(NAMESPACE)
    return StackSecrets(
        slack_webhook_url=cfg.require_secret("slackWebhookUrl").apply(lambda url: https_url("slackWebhookUrl", url)),
        heartbeat_url=cfg.require_secret("heartbeatUrl").apply(lambda url: https_url("heartbeatUrl", url)),
    )


def https_url(key: str, url: str) -> str:
    if not re.match(r"^https://[^/\s]+/\S+$", url or ""):
        # The URL is a credential: the message never repeats it.
        raise ConfigError(key, "must be an https:// URL with a path (the value is not shown: it is a secret)")
    return url


SECRET_KEYS = ("slackWebhookUrl", "heartbeatUrl")
# Keys a stack may still set from an earlier version of the program, and what to do instead.
RETIRED_KEYS = {
    "powertoolsLayerVersion": "no longer used: the Lambdas bundle the Powertools release requirements.txt pins "
    "(infra/alerting.py); remove the key",
}
# The keys both engines read; with each engine's own (ENGINE_KEYS), every key a stack may set.
COMMON_KEYS = (
    "engine",
    "vpcId",
    "subnetId",
    "availabilityZone",
    "redisAllowedCidrs",
    "redisAllowedSecurityGroupIds",
    "snapshotRetainCount",
    "namespace",
    "alertEmail",
    "logRetentionDays",
    "warmupImageTag",
    "warmupPublicIp",
    "existingNamespace",
)
KNOWN_KEYS = (*COMMON_KEYS, *ENGINE_KEYS[SPOT_HOST], *ENGINE_KEYS[VALKEY_SERVERLESS])


class _Reader:
    """Typed access to the raw values; remembers which keys were read so that unknown ones can be refused."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)
        self._read: set[str] = set()

    def raw(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        return self._values.get(key, default)

    def string(self, key: str, *, default: str | None = ..., pattern: str | None = None) -> Any:
        value = self.raw(key)
        if value is None:
            if default is ...:
                raise ConfigError(key, "required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key, f"expected a non-empty string, got {value!r}")
        if pattern and not re.fullmatch(pattern, value):
            raise ConfigError(key, f"{value!r} does not look right (expected {pattern})")
        return value

    def aws_id(self, key: str, kind: str) -> str:
        return self.string(key, pattern=_AWS_ID[kind])

    def aws_id_list(self, key: str, kind: str) -> list[str]:
        values = self.string_list(key)
        for value in values:
            if not re.fullmatch(_AWS_ID[kind], value):
                raise ConfigError(key, f"{value!r} is not a {kind}- id")
        return values

    def string_list(self, key: str) -> list[str]:
        value = self.raw(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise ConfigError(key, f"expected a list of strings, got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(key, "lists a value twice")
        return value

    def cidrs(self, key: str) -> tuple[str, ...]:
        networks = []
        for text in self.string_list(key):
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError as error:
                raise ConfigError(key, f"{text!r} is not a CIDR block ({error})") from None
            if network.prefixlen == 0:
                raise ConfigError(key, f"{text} would open the port to the whole internet; name your networks")
            networks.append(str(network))
        return tuple(networks)

    def optional_integer(self, key: str, *, low: int, high: int) -> int | None:
        return None if self.raw(key) is None else self.integer(key, default=0, low=low, high=high)

    def integer(self, key: str, *, default: int, low: int, high: int) -> int:
        value = self.raw(key, default)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # `pulumi config set key 7` stores a string
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(key, f"{value} is out of range ({low} to {high})")
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.raw(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, default: str) -> str:
        value = self.string(key, default=default)
        if value not in choices:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def refuse_unknown(self) -> None:
        unknown = sorted(set(self._values) - self._read - set(SECRET_KEYS))
        retired = [key for key in unknown if key in RETIRED_KEYS]
        if retired:
            raise ConfigError(retired[0], RETIRED_KEYS[retired[0]])
        if unknown:
            raise ConfigError(unknown[0], f"unknown key (known: {', '.join(KNOWN_KEYS + SECRET_KEYS)})")


def _stack_name(stack: str) -> str:
    # The longest name made from it, the bucket prefix `spot-redis-<stack>-`, may have 37 characters.
    if not _DNS_LABEL.match(stack) or len(stack) > MAX_STACK_NAME:
        raise ConfigError(
            "stack", f"stack name {stack!r}: use lowercase letters, digits and dashes ({MAX_STACK_NAME} at most)"
        )
    return stack


def _availability_zone(reader: _Reader, region: str) -> str:
    zone = reader.string("availabilityZone", pattern=r"[a-z]{2}(-[a-z]+)+-\d[a-z]")
    if not zone.startswith(region):
        raise ConfigError("availabilityZone", f"{zone} is not in the region {region}")
    return zone


def _instance_types(reader: _Reader, architecture: str) -> tuple[str, ...]:
    types = reader.string_list("instanceTypes") or list(DEFAULT_INSTANCE_TYPES[architecture])
    for instance_type in types:
        if not _INSTANCE_TYPE.match(instance_type):
            raise ConfigError("instanceTypes", f"{instance_type!r} is not an instance type")
        if instance_architecture(instance_type) != architecture:
            raise ConfigError(
                "instanceTypes",
                f"{instance_type} is {instance_architecture(instance_type)}, not {architecture} (see architecture)",
            )
    if len(types) > 20:
        raise ConfigError("instanceTypes", "at most 20 types (the mixed-instances policy's limit)")
    return tuple(types)


def _working_hours(reader: _Reader) -> WorkingHours | None:
    always_on = reader.boolean("alwaysOn", default=False)
    hours = reader.raw("workingHours")
    if always_on:
        if hours is not None:
            raise ConfigError("alwaysOn", "set either alwaysOn or workingHours, not both")
        return None
    if not isinstance(hours, dict):
        raise ConfigError("workingHours", "required unless alwaysOn is true: {days, start, end, timeZone}")
    unknown = set(hours) - {"days", "start", "end", "timeZone"}
    missing = {"days", "start", "end", "timeZone"} - set(hours)
    if unknown or missing:
        raise ConfigError(
            "workingHours",
            f"expected days, start, end and timeZone; missing {sorted(missing)}, unknown {sorted(unknown)}",
        )
    try:
        return working_hours(str(hours["days"]), str(hours["start"]), str(hours["end"]), str(hours["timeZone"]))
    except ScheduleError as error:
        raise ConfigError("workingHours", str(error)) from None


def _snapshot_interval(reader: _Reader) -> int:
    every = reader.integer("snapshotEveryHours", default=2, low=1, high=24)
    if every not in SNAPSHOT_INTERVALS:
        raise ConfigError("snapshotEveryHours", f"{every} is not one of {SNAPSHOT_INTERVALS}")
    return every


def _namespace(reader: _Reader) -> str:
    name = reader.string("namespace").lower().rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ConfigError("namespace", f"{name!r} is not a DNS name of two labels or more (e.g. staging.internal)")
    return name


def _alert_email(reader: _Reader) -> str | None:
    email = reader.string("alertEmail", default=None)
    if email is not None and not _EMAIL.match(email):
        raise ConfigError("alertEmail", f"{email!r} is not an e-mail address")
    return email


def _log_retention(reader: _Reader) -> int:
    days = reader.integer("logRetentionDays", default=30, low=1, high=3653)
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError("logRetentionDays", f"{days} is not a CloudWatch retention ({LOG_RETENTION_DAYS})")
    return days
