"""Security groups: Redis from the allowed sources only, monitoring from the host and admin networks, no SSH."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.component import Concern
from infra.config import REDIS_PORT, StackConfig

# Monitoring runs on the Redis host itself (the single-host layout); admins may reach it from adminCidrs.
MONITORING_PORTS = {"node_exporter": 9100, "redis_exporter": 9121, "prometheus": 9090, "alertmanager": 9093}
# What the host reaches out to: AWS APIs, S3, SSM, Slack and PyPI over HTTPS; Debian's mirrors over HTTP
# (apt checks signatures). DNS and NTP go to the VPC's link-local services, which security groups do not filter.
HOST_EGRESS = {"https": 443, "http": 80}


class _Groups(Concern):
    """What both engines' security groups share: how a group of the stack is made."""

    def _group(self, role: str, description: str) -> aws.ec2.SecurityGroup:
        return aws.ec2.SecurityGroup(
            f"{self.config.stack}-{role}",
            description=description,
            vpc_id=self.config.vpc_id,
            tags=self.tags(role),
            opts=self.child,
        )


class SecurityGroups(_Groups):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("SecurityGroups", name, config, opts)
        self.host = self._group("host", "The Spot Redis host: Redis, exporters, Prometheus, Alertmanager; no SSH")
        self.warmup = self._group("warmup", "The warm-up batch task: reaches Redis and HTTPS only")

        self._ingress_from_sources(f"{name}-redis", REDIS_PORT, "Redis")
        self._ingress(
            f"{name}-redis-from-warmup",
            REDIS_PORT,
            "Redis, from the warm-up batch",
            referenced_security_group_id=self.warmup.id,
        )
        for service, port in MONITORING_PORTS.items():
            self._ingress(
                f"{name}-{service}-from-host",
                port,
                f"{service}, from Prometheus on the host",
                referenced_security_group_id=self.host.id,
            )
            for index, cidr in enumerate(config.admin_cidrs):
                self._ingress(
                    f"{name}-{service}-admin-{index}", port, f"{service}, from an admin network", **_cidr(cidr)
                )
        for purpose, port in HOST_EGRESS.items():
            self._egress(f"{name}-host-{purpose}", self.host, port, f"{purpose} out", cidr_ipv4="0.0.0.0/0")
        self._egress(
            f"{name}-warmup-redis", self.warmup, REDIS_PORT, "Redis", referenced_security_group_id=self.host.id
        )
        self._egress(f"{name}-warmup-https", self.warmup, 443, "ECR, CloudWatch Logs, SSM", cidr_ipv4="0.0.0.0/0")
        self.register_outputs({"host_security_group_id": self.host.id, "warmup_security_group_id": self.warmup.id})

    def _ingress_from_sources(self, name: str, port: int, what: str) -> None:
        for index, group_id in enumerate(self.config.redis_allowed_security_group_ids):
            self._ingress(
                f"{name}-sg-{index}", port, f"{what}, from an application group", referenced_security_group_id=group_id
            )
        for index, cidr in enumerate(self.config.redis_allowed_cidrs):
            self._ingress(f"{name}-cidr-{index}", port, f"{what}, from an application network", **_cidr(cidr))

    def _ingress(self, name: str, port: int, description: str, **source: object) -> None:
        self._rule(aws.vpc.SecurityGroupIngressRule, name, self.host, port, description, **source)

    def _egress(self, name: str, group: aws.ec2.SecurityGroup, port: int, description: str, **target: object) -> None:
        self._rule(aws.vpc.SecurityGroupEgressRule, name, group, port, description, **target)

    def _rule(self, kind: type, name: str, group: aws.ec2.SecurityGroup, port: int, description: str, **peer: object):
        """One TCP port to or from one peer (a CIDR or a security group): a rule resource of its own."""
        kind(
            name,
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description,
            tags=self.tags(),
            opts=self.child,
            **peer,
        )


def _cidr(cidr: str) -> dict[str, str]:
    return {"cidr_ipv6": cidr} if ":" in cidr else {"cidr_ipv4": cidr}


class CacheSecurityGroups(_Groups):
    """The valkey-serverless engine's groups: the cache admits Redis's port from the same sources as the host would
    (the application's groups and networks, and the warm-up batch), nothing else; the warm-up group as for the host."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("CacheSecurityGroups", name, config, opts)
        self.cache = self._group("cache", "The ElastiCache Serverless cache: Redis from the allowed sources only")
        self.warmup = self._group("warmup", "The warm-up batch task: reaches Redis and HTTPS only")
        for index, group_id in enumerate(config.redis_allowed_security_group_ids):
            self._ingress(
                f"{name}-redis-sg-{index}", "Redis, from an application group", referenced_security_group_id=group_id
            )
        for index, cidr in enumerate(config.redis_allowed_cidrs):
            self._ingress(f"{name}-redis-cidr-{index}", "Redis, from an application network", **_cidr(cidr))
        self._ingress(
            f"{name}-redis-from-warmup", "Redis, from the warm-up batch", referenced_security_group_id=self.warmup.id
        )
        for purpose, port, peer in (
            ("redis", REDIS_PORT, {"referenced_security_group_id": self.cache.id}),
            ("https", 443, {"cidr_ipv4": "0.0.0.0/0"}),
        ):
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-warmup-{purpose}",
                security_group_id=self.warmup.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description="Redis" if purpose == "redis" else "ECR, CloudWatch Logs, SSM",
                tags=self.tags(),
                opts=self.child,
                **peer,
            )
        self.register_outputs({"cache_security_group_id": self.cache.id, "warmup_security_group_id": self.warmup.id})

    def _ingress(self, name: str, description: str, **source: object) -> None:
        aws.vpc.SecurityGroupIngressRule(
            name,
            security_group_id=self.cache.id,
            ip_protocol="tcp",
            from_port=REDIS_PORT,
            to_port=REDIS_PORT,
            description=description,
            tags=self.tags(),
            opts=self.child,
            **source,
        )
