"""The stack's AWS resources as the subcommands read them: the group, its host, the data volume."""

from __future__ import annotations

import datetime
from typing import Any

from spot_redis.cli.context import CliError, Stack

LIVE_STATES = ("pending", "running")


def group(stack: Stack) -> dict[str, Any]:
    groups = stack.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[stack.group])
    found = groups.get("AutoScalingGroups") or []
    if not found:
        raise CliError(
            f"the Auto Scaling group {stack.group} of stack {stack.name!r} does not exist in this account/region"
        )
    return found[0]


def host(stack: Stack, asg: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The group's live instance (describe_instances' view), or None when the group has none."""
    asg = asg or group(stack)
    ids = [instance["InstanceId"] for instance in asg.get("Instances", [])]
    if not ids:
        return None
    reservations = stack.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    instances = [instance for reservation in reservations for instance in reservation["Instances"]]
    live = [instance for instance in instances if instance["State"]["Name"] in LIVE_STATES]
    return max(live, key=lambda instance: instance["LaunchTime"]) if live else None


def running_host(stack: Stack) -> dict[str, Any]:
    instance = host(stack)
    if instance is None or instance["State"]["Name"] != "running":
        raise CliError(f"stack {stack.name!r} has no running host: start one with `spot-redis start`")
    return instance


def volume(stack: Stack) -> dict[str, Any]:
    volumes = stack.client("ec2").describe_volumes(VolumeIds=[stack.volume_id])["Volumes"]
    if not volumes:
        raise CliError(f"the data volume {stack.volume_id} does not exist")
    return volumes[0]


def age(since: datetime.datetime, now: datetime.datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def set_desired(stack: Stack, desired: int) -> dict[str, Any]:
    """Set the group's desired capacity now; returns the group as it was."""
    before = group(stack)
    stack.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName=stack.group, DesiredCapacity=desired, HonorCooldown=False
    )
    return before
