#!/usr/bin/env python3
"""Ansible dynamic inventory: the running hosts of one spot-redis stack, reached through SSM Session Manager.

    SPOT_REDIS_STACK=staging AWS_REGION=ap-northeast-1 ansible-inventory -i inventories/aws --graph

Lists the RUNNING EC2 instances tagged spot-redis:stack=<SPOT_REDIS_STACK>, each in the groups redis and
monitoring (the AWS layout: one host runs Redis and its monitoring), named by instance id. Ansible and testinfra
SSH to them as `admin` through `aws ssm start-session` (no SSH port is open anywhere).

Each host's settings (admin_cidrs, redis_legacy_auth, the data volume's paths, the SSM parameter prefix) are read
from its own user data, the settings it booted with (infra/bootstrap.py writes them there), so that a push renders the
same configuration as the host's own boot. Nothing secret is printed: the secrets are looked up at run time by
group_vars (aws ssm get-parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

# The inventory lives in the repository: it reads user data with the same code that writes it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from infra.bootstrap import decode_user_data, parse_user_data
from spot_redis.agent import layout
from spot_redis.agent.settings import ENV_PREFIX, parse_flag

STACK_TAG = "spot-redis:stack"
LEGACY_AUTH = ENV_PREFIX + "REDIS_LEGACY_AUTH"  # HostSettings.redis_legacy_auth
GROUPS = ("redis", "monitoring")


class InventoryError(Exception):
    pass


def stack_and_region(environ=os.environ) -> tuple[str, str]:
    stack = environ.get("SPOT_REDIS_STACK", "").strip()
    if not stack:
        raise InventoryError(
            "SPOT_REDIS_STACK is not set: export SPOT_REDIS_STACK=<the Pulumi stack name, e.g. staging>"
        )
    region = (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        raise InventoryError("AWS_REGION (or AWS_DEFAULT_REGION) is not set: export AWS_REGION=<the stack's region>")
    return stack, region


def proxy_command_args(region: str) -> str:
    """SSH through Session Manager: %h is the instance id, %p the port (22)."""
    proxy = (
        "aws ssm start-session --target %h --document-name AWS-StartSSHSession "
        f"--parameters portNumber=%p --region {shlex.quote(region)}"
    )
    # Every instance is new (Spot): accept a new host key once, keyed by its instance id, then check it.
    return f'-o ProxyCommand="{proxy}" -o StrictHostKeyChecking=accept-new'


def _split(text: str) -> list[str]:
    return [item for item in text.replace(",", " ").split() if item]


def _user_data(ec2, instance_id: str) -> str:
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    encoded = attribute.get("UserData", {}).get("Value", "")
    return decode_user_data(encoded) if encoded else ""


def _vpc_cidrs(ec2, vpc_id: str, cache: dict[str, list[str]]) -> list[str]:
    if vpc_id not in cache:
        (vpc,) = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
        associations = vpc.get("CidrBlockAssociationSet") or [{"CidrBlock": vpc["CidrBlock"]}]
        cache[vpc_id] = [
            association["CidrBlock"]
            for association in associations
            if association.get("CidrBlockState", {}).get("State", "associated") == "associated"
        ]
    return cache[vpc_id]


def host_vars(ec2, instance: dict, stack: str, region: str, vpc_cache: dict[str, list[str]]) -> dict:
    instance_id = instance["InstanceId"]
    settings = parse_user_data(_user_data(ec2, instance_id))
    return {
        "ansible_host": instance_id,
        "ansible_user": "admin",
        "ansible_become": True,
        "ansible_ssh_common_args": proxy_command_args(region),
        "private_address": instance["PrivateIpAddress"],
        "vpc_cidrs": _vpc_cidrs(ec2, instance["VpcId"], vpc_cache),
        # The settings the host booted with (see infra/bootstrap.py's HostSettings).
        "admin_cidrs": _split(settings.get("SPOT_REDIS_ADMIN_CIDRS", "")),
        "spot_redis_extra_allowed_cidrs": _split(settings.get("SPOT_REDIS_REDIS_ALLOWED_CIDRS", "")),
        # The data volume: Redis's directory, and, the host monitoring itself, Prometheus's and Alertmanager's.
        **data_volume_vars(settings.get("SPOT_REDIS_DATA_MOUNT", "/srv/redis")),
        "redis_legacy_auth": parse_flag(LEGACY_AUTH, settings.get(LEGACY_AUTH, "false")),
        "spot_redis_stack": stack,
        "spot_redis_region": region,
        "spot_redis_parameter_prefix": settings.get("SPOT_REDIS_PARAMETER_PREFIX", f"/spot-redis/{stack}"),
        "ec2_instance_type": instance.get("InstanceType", ""),
        "ec2_availability_zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
    }


def data_volume_vars(data_mount: str) -> dict[str, str]:
    """As the host's own boot gives them (spot_redis.agent.boot): every host here monitors itself."""
    return {
        "redis_data_mount": data_mount,
        "redis_data_dir": str(layout.redis_dir(data_mount)),
        "prometheus_storage_path": str(layout.prometheus_dir(data_mount)),
        "alertmanager_storage_path": str(layout.alertmanager_dir(data_mount)),
    }


def running_instances(ec2, stack: str) -> list[dict]:
    paginator = ec2.get_paginator("describe_instances")
    pages = paginator.paginate(
        Filters=[
            {"Name": f"tag:{STACK_TAG}", "Values": [stack]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    instances = [
        instance for page in pages for reservation in page["Reservations"] for instance in reservation["Instances"]
    ]
    return sorted(instances, key=lambda instance: instance["InstanceId"])


def build_inventory(ec2, stack: str, region: str) -> dict:
    vpc_cache: dict[str, list[str]] = {}
    hostvars = {
        instance["InstanceId"]: host_vars(ec2, instance, stack, region, vpc_cache)
        for instance in running_instances(ec2, stack)
    }
    inventory: dict = {"_meta": {"hostvars": hostvars}, "all": {"children": ["ungrouped", *GROUPS]}}
    for group in GROUPS:
        inventory[group] = {"hosts": list(hostvars)}
    return inventory


def ec2_client(region: str):
    import boto3  # imported late: `--help` and the missing-stack error need no SDK

    return boto3.client("ec2", region_name=region)


def main(argv: list[str] | None = None, environ=os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="every host, grouped, with its variables")
    mode.add_argument("--host", metavar="INSTANCE_ID", help="one host's variables")
    args = parser.parse_args(argv)
    try:
        stack, region = stack_and_region(environ)
    except InventoryError as error:
        print(f"spot_redis.py: {error}", file=sys.stderr)
        return 2
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        inventory = build_inventory(ec2_client(region), stack, region)
    except (BotoCoreError, ClientError) as error:
        print(f"spot_redis.py: listing the hosts of stack {stack} in {region} failed: {error}", file=sys.stderr)
        return 1
    result = inventory if args.list else inventory["_meta"]["hostvars"].get(args.host, {})
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
