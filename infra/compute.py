"""The Spot host: its IAM role, the launch templates that bootstrap it, and the Auto Scaling group that keeps it."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.bootstrap import HostSettings, ansible_core_pin, encode_user_data, render_user_data
from infra.component import Concern, resolved
from infra.config import StackConfig
from infra.preflight import Namespace
from infra.schedule import asg_recurrences, is_working_time

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# The data volume's mount point, the redis role's redis_data_mount (its layout: spot_redis/agent/layout.py).
DATA_MOUNT = "/srv/redis"
ROOT_VOLUME_GIB = 8
# lambdas/capacity owns the on-demand base while the fallback is on: `pulumi up` must not reset a group that fell back
# to on-demand to Spot, which could make Auto Scaling replace the serving host.
ON_DEMAND_BASE = "mixedInstancesPolicy.instancesDistribution.onDemandBaseCapacity"
# Burstable performance (T) families: t2, t3, t3a, t4g. All but t2 launch with `unlimited` CPU credits by default,
# which bills the surplus credits a busy host spends above its baseline: on a Spot host that can cost more than the
# Spot price itself. They launch with `standard` credits here (a busy host is held to its baseline instead).
_BURSTABLE_FAMILY = re.compile(r"^t\d+[a-z]*$")
BURSTABLE_CPU_CREDITS = "standard"


def debian_ami(architecture: str) -> str:
    """Debian 12's current AMI, resolved by EC2 at launch from Debian's public SSM parameter (no invoke, no pinning)."""
    return f"resolve:ssm:/aws/service/debian/release/12/latest/{'arm64' if architecture == 'arm64' else 'amd64'}"


def asg_tags(tags: dict[str, str]) -> list[dict]:
    """The Auto Scaling group's tags, propagated to the instances it launches (the Lambdas look for them)."""
    return [{"key": key, "value": value, "propagate_at_launch": True} for key, value in sorted(tags.items())]


def is_burstable(instance_type: str) -> bool:
    """Whether the type is a burstable performance (T) type, whose CPU credits can be set: t3.small, t4g.medium..."""
    return bool(_BURSTABLE_FAMILY.match(instance_type.split(".", 1)[0]))


def mixed_instances_policy(
    instance_types: tuple[str, ...],
    launch_template_id: pulumi.Input[str],
    burstable_template_id: pulumi.Input[str] | None = None,
) -> dict:
    """100% Spot over several instance types: no on-demand base, no on-demand share above it. The T types launch from
    the burstable template (standard CPU credits), the others from the group's template, which sets no credits: a
    credit specification is for T instances only, and each override may name its own launch template."""
    return {
        "instances_distribution": {
            "on_demand_base_capacity": 0,
            "on_demand_percentage_above_base_capacity": 0,
            "spot_allocation_strategy": "price-capacity-optimized",
        },
        "launch_template": {
            "launch_template_specification": _template_specification(launch_template_id),
            "overrides": [_override(instance_type, burstable_template_id) for instance_type in instance_types],
        },
    }


def _override(instance_type: str, burstable_template_id: pulumi.Input[str] | None) -> dict:
    if burstable_template_id is None or not is_burstable(instance_type):
        return {"instance_type": instance_type}
    return {
        "instance_type": instance_type,
        "launch_template_specification": _template_specification(burstable_template_id),
    }


def _template_specification(launch_template_id: pulumi.Input[str]) -> dict:
    return {"launch_template_id": launch_template_id, "version": "$Latest"}


class SpotHost(Concern):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        repo_root: Path,
        account_id: pulumi.Input[str],
        security_group_id: pulumi.Input[str],
        volume: aws.ebs.Volume,
        bundle_bucket: aws.s3.Bucket,
        bundle_key: str,
        parameter_arns: pulumi.Input[list[str]],
        redis_service: aws.servicediscovery.Service,
        namespace: aws.servicediscovery.PrivateDnsNamespace | Namespace,
        boot_prerequisites: list[pulumi.Resource],
        now: datetime.datetime,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("SpotHost", name, config, opts)
        self._role(name, account_id, volume, bundle_bucket, parameter_arns, redis_service, namespace)
        settings = resolved(
            HostSettings,
            stack=config.stack,
            region=config.region,
            data_volume_id=volume.id,
            data_mount=DATA_MOUNT,
            bundle_bucket=bundle_bucket.id,
            bundle_key=bundle_key,
            parameter_prefix=config.parameter_prefix,
            cloudmap_service_id=redis_service.id,
            ansible_core_version=ansible_core_pin((repo_root / "requirements.txt").read_text()),
            admin_cidrs=config.admin_cidrs,
            redis_allowed_cidrs=config.redis_allowed_cidrs,
            redis_legacy_auth=config.redis_legacy_auth,
        )
        self.user_data = settings.apply(render_user_data)
        self._launch_template(name, security_group_id)
        self._auto_scaling_group(name, boot_prerequisites, now)
        self.register_outputs({"asg_name": self.group.name, "launch_template_id": self.launch_template.id})

    def _role(self, name, account_id, volume, bundle_bucket, parameter_arns, redis_service, namespace) -> None:
        config = self.config
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=iam_documents.assume_role_policy("ec2.amazonaws.com"),
            description="The spot-redis host: its data volume, its parameters, its bundle, its Cloud Map record",
            tags=self.tags("host"),
            opts=self.child,
        )
        self.ssm_core = aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core", role=self.role.name, policy_arn=SSM_CORE_POLICY, opts=self.child
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=resolved(
                iam_documents.host_policy,
                stack=config.stack,
                region=config.region,
                account_id=account_id,
                volume_arn=volume.arn,
                cloudmap_service_arn=redis_service.arn,
                hosted_zone_id=namespace.hosted_zone,
                parameter_arns=parameter_arns,
                bundle_bucket_arn=bundle_bucket.arn,
                asg_name=self.physical_name("redis"),
            ),
            opts=self.child,
        )
        self.instance_profile = aws.iam.InstanceProfile(
            f"{name}-profile", role=self.role.name, tags=self.tags("host"), opts=self.child
        )

    def _launch_template(self, name: str, security_group_id: pulumi.Input[str]) -> None:
        host = self._host_template(security_group_id)
        description = f"spot-redis {self.config.stack}: Debian 12, configured at boot by the repository's Ansible"
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-template", description=description, **host, opts=self.child
        )
        self.burstable_template = None
        if any(is_burstable(instance_type) for instance_type in self.config.instance_types):
            self.burstable_template = aws.ec2.LaunchTemplate(
                f"{name}-burstable-template",
                description=f"{description}; T types, {BURSTABLE_CPU_CREDITS} CPU credits",
                credit_specification={"cpu_credits": BURSTABLE_CPU_CREDITS},
                **host,
                opts=self.child,
            )

    def _host_template(self, security_group_id: pulumi.Input[str]) -> dict:
        """What every launch template of the host says (the burstable one adds its CPU credits)."""
        tags = self.tags("redis")
        return {
            "image_id": debian_ami(self.config.architecture),
            "iam_instance_profile": {"arn": self.instance_profile.arn},
            # Explicit rather than the subnet's default: a public address costs by the hour (hostPublicIp).
            "network_interfaces": [
                {
                    "device_index": 0,
                    "associate_public_ip_address": str(self.config.host_public_ip).lower(),
                    "security_groups": [security_group_id],
                    "delete_on_termination": "true",
                }
            ],
            "key_name": self.config.key_name,
            "metadata_options": {
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "enabled",
            },
            "block_device_mappings": [
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": ROOT_VOLUME_GIB,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            "user_data": self.user_data.apply(encode_user_data),
            "tag_specifications": [
                {"resource_type": "instance", "tags": tags},
                {"resource_type": "volume", "tags": tags},
            ],
            "update_default_version": True,
            "tags": tags,
        }

    def _auto_scaling_group(self, name: str, boot_prerequisites: list[pulumi.Resource], now: datetime.datetime) -> None:
        config = self.config
        always_on = config.working_hours is None
        self.group = aws.autoscaling.Group(
            f"{name}-group",
            name=self.physical_name("redis"),
            min_size=0,
            max_size=1,
            # Created inside working hours, the host starts at once. After that the scheduled actions own the
            # desired capacity: `pulumi up` must not reset it (ignore_changes below).
            desired_capacity=1 if is_working_time(config.working_hours, now) else 0,
            vpc_zone_identifiers=[config.subnet_id],
            # No capacity rebalancing: with one data volume and max 1, a rebalance *recommendation* would launch a
            # replacement that cannot get the volume, then terminate the working host. Only a real interruption
            # notice acts: the host's watcher detaches itself from the group, which launches the replacement.
            capacity_rebalance=False,
            health_check_type="EC2",
            health_check_grace_period=300,
            mixed_instances_policy=mixed_instances_policy(
                config.instance_types,
                self.launch_template.id,
                self.burstable_template.id if self.burstable_template else None,
            ),
            tags=asg_tags(self.tags("redis")),
            # The first host reads its policy, the SSM parameters and the bundle at boot: they must exist before it.
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=([] if always_on else ["desiredCapacity"])
                + ([ON_DEMAND_BASE] if config.on_demand_fallback else []),
                depends_on=[self.policy, self.ssm_core, *boot_prerequisites],
            ),
        )
        if always_on:
            return
        start, stop = asg_recurrences(config.working_hours)
        for action, recurrence, desired in (("start", start, 1), ("stop", stop, 0)):
            aws.autoscaling.Schedule(
                f"{name}-{action}",
                scheduled_action_name=f"working-hours-{action}",
                autoscaling_group_name=self.group.name,
                recurrence=recurrence,
                time_zone=config.working_hours.time_zone,
                min_size=0,
                max_size=1,
                desired_capacity=desired,
                opts=self.child,
            )
