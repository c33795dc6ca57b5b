"""The valkey-serverless engine: an ElastiCache Serverless cache for Valkey instead of the Spot host.

The cache runs in the stack's cache subnets (it replicates across their zones), behind the cache security group
(infra/network.py's CacheSecurityGroups), with the redis role's users (infra/acl.py) and the passwords the stack keeps
in SSM (infra/parameters.py), within usage limits that cap the bill, with daily snapshots, and with CloudWatch alarms
on those limits that notify tells Slack about (infra/alerting.py routes them). Encryption at rest (an AWS-owned key)
and TLS in transit are always on for a serverless cache: there is nothing to turn on.

The passwords reach ElastiCache through the elasticache.User resources' ``authentication_mode``: Pulumi keeps them,
as it keeps the generated passwords themselves (random.RandomPassword), encrypted as secrets in the stack's state.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from infra import acl
from infra.component import Concern
from infra.config import NAMESPACE, CacheSettings, StackConfig
from spot_redis.events import CACHE_ALARMS

ENGINE = "valkey"
MAJOR_ENGINE_VERSION = "8"
# The alarms go off at this share of a usage limit: ElastiCache throttles (ECPU) or refuses writes (storage) at it.
ALARM_SHARE = 0.8
DATA_ALARM_PERIOD_SECONDS = 300
ECPU_ALARM_PERIOD_SECONDS = 60
BYTES_PER_GB = 10**9  # ElastiCache's usage limits and bill count decimal gigabytes


def cache_name(config: StackConfig) -> str:
    """The serverless cache's name (at most 40 characters: `spot-redis-` and a stack name of 25 at most)."""
    return f"{NAMESPACE}-{config.stack}"


def usage_limits(cache: CacheSettings) -> dict:
    return {
        "data_storage": {"maximum": cache.max_data_gb, "unit": "GB"},
        "ecpu_per_seconds": [{"maximum": cache.max_ecpu_per_second}],
    }


def alarm_thresholds(cache: CacheSettings) -> dict[str, float]:
    """Each alarm's threshold, in its metric's unit and period: bytes stored, ECPUs per period."""
    return {
        "cache-data-storage": ALARM_SHARE * cache.max_data_gb * BYTES_PER_GB,
        "cache-ecpu": ALARM_SHARE * cache.max_ecpu_per_second * ECPU_ALARM_PERIOD_SECONDS,
    }


class ValkeyServerless(Concern):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        security_group_id: pulumi.Input[str],
        passwords: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ValkeyServerless", name, config, opts)
        assert config.cache is not None, "the valkey-serverless engine's settings"
        cache = config.cache
        self.users = {user.purpose: self._user(name, user, passwords) for user in acl.serverless_users()}
        self.user_group = aws.elasticache.UserGroup(
            f"{name}-users",
            user_group_id=acl.user_group_id(config.stack),
            engine=ENGINE,
            user_ids=[user.user_id for user in self.users.values()],
            tags=self.tags("users"),
            opts=self.child,
        )
        restore = [cache.restore_rdb_arn] if cache.restore_rdb_arn else None
        self.cache = aws.elasticache.ServerlessCache(
            f"{name}-cache",
            name=cache_name(config),
            description=f"spot-redis {config.stack}: redis.{config.namespace}",
            engine=ENGINE,
            major_engine_version=MAJOR_ENGINE_VERSION,
            cache_usage_limits=usage_limits(cache),
            daily_snapshot_time=cache.snapshot_time,
            snapshot_retention_limit=config.snapshot_retain_count,
            subnet_ids=list(cache.subnet_ids),
            security_group_ids=[security_group_id],
            user_group_id=self.user_group.user_group_id,
            snapshot_arns_to_restores=restore,
            tags=self.tags("cache"),
            # The RDB only seeds a new cache: removing or changing cacheRestoreRdb later must not replace the cache
            # (a replacement starts from that file, or empty, and loses what was written since).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["snapshotArnsToRestores"]),
        )
        self.endpoint = self.cache.endpoints.apply(lambda endpoints: endpoints[0].address if endpoints else "")
        self.alarms = self._alarms(name, cache)
        self.register_outputs({"cache_name": self.cache.name, "endpoint": self.endpoint})

    def _user(self, name: str, user: acl.AclUser, passwords: Mapping[str, pulumi.Input[str]]) -> aws.elasticache.User:
        if user.password_purpose is None:
            authentication = {"type": "no-password-required"}
        else:
            authentication = {"type": "password", "passwords": [pulumi.Output.secret(passwords[user.password_purpose])]}
        return aws.elasticache.User(
            f"{name}-user-{user.purpose}",
            user_id=acl.user_id(self.config.stack, user.purpose),
            user_name=user.user_name,
            engine=ENGINE,
            access_string=user.access_string,
            authentication_mode=authentication,
            tags=self.tags(f"user-{user.purpose}"),
            opts=self.child,
        )

    def _alarms(self, name: str, cache: CacheSettings) -> list[aws.cloudwatch.MetricAlarm]:
        thresholds = alarm_thresholds(cache)
        specs = {
            "cache-data-storage": ("BytesUsedForCache", "Maximum", DATA_ALARM_PERIOD_SECONDS),
            "cache-ecpu": ("ElastiCacheProcessingUnits", "Sum", ECPU_ALARM_PERIOD_SECONDS),
        }
        assert set(specs) == set(CACHE_ALARMS), "spot_redis/events.py names the cache's alarms"
        alarms = []
        for kind, (metric, statistic, period) in specs.items():
            alarms.append(
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{kind}",
                    name=self.physical_name(kind),
                    alarm_description=CACHE_ALARMS[kind],
                    namespace="AWS/ElastiCache",
                    metric_name=metric,
                    dimensions={"clusterId": self.cache.name},
                    statistic=statistic,
                    period=period,
                    evaluation_periods=1,
                    threshold=thresholds[kind],
                    comparison_operator="GreaterThanThreshold",
                    treat_missing_data="notBreaching",
                    tags=self.tags(kind),
                    opts=self.child,
                )
            )
        return alarms
