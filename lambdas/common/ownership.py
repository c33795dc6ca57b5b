"""Which resources are ours: those tagged spot-redis:stack=<STACK_NAME>. Everything else is ignored."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from spot_redis.events import STACK_TAG

__all__ = ["STACK_TAG", "alarm_is_ours", "instance_stack", "is_ours"]


def instance_stack(ec2: Any, instance_id: str) -> str | None:
    """The stack an instance belongs to, from its tags; None when it has no stack tag or does not exist."""
    response = ec2.describe_tags(
        Filters=[
            {"Name": "resource-id", "Values": [instance_id]},
            {"Name": "key", "Values": [STACK_TAG]},
        ]
    )
    values = [tag["Value"] for tag in response.get("Tags", [])]
    return values[0] if values else None


def is_ours(ec2: Any, instance_id: str, stack: str) -> bool:
    return bool(instance_id) and instance_stack(ec2, instance_id) == stack


def alarm_is_ours(cloudwatch: Any, alarm_arn: str, stack: str) -> bool:
    """Whether a CloudWatch alarm carries this stack's tag; False for an alarm that no longer exists."""
    try:
        tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm_arn).get("Tags", [])
    except ClientError as error:
        # ResourceNotFoundException per the API model; older documentation names it ResourceNotFound.
        if error.response.get("Error", {}).get("Code") in ("ResourceNotFoundException", "ResourceNotFound"):
            return False
        raise
    return any(tag.get("Key") == STACK_TAG and tag.get("Value") == stack for tag in tags)
