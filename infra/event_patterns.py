"""EventBridge event patterns for the rules that drive the notify, warmup and capacity Lambdas.

Pure functions, no Pulumi: each returns a pattern as a dict; the caller json.dumps it
(inside an Output.apply when an argument is an Output). The custom events' source, detail-types and detail keys are
spot_redis/events.py's.
"""

import re

from spot_redis.events import HOST_READY, SOURCE, WARMUP_DATASETS, WARMUP_REQUESTED

SPOT_INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
INSTANCE_STATE_CHANGE = "EC2 Instance State-change Notification"
NOTIFIED_INSTANCE_STATES = ("running", "stopping", "stopped", "shutting-down", "terminated")
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
LAUNCH_UNSUCCESSFUL = "EC2 Instance Launch Unsuccessful"
TERMINATE_SUCCESSFUL = "EC2 Instance Terminate Successful"

_CLUSTER_ARN = re.compile(r"^arn:(?P<partition>[a-z-]+):ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):cluster/.+$")
_TASK_FAMILY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def spot_warnings() -> dict:
    """The 2-minute Spot interruption warning and the earlier rebalance recommendation."""
    return {"source": ["aws.ec2"], "detail-type": [SPOT_INTERRUPTION_WARNING, REBALANCE_RECOMMENDATION]}


def instance_state_changes() -> dict:
    """Instance state changes worth a message (not "pending": "running" follows it)."""
    return {
        "source": ["aws.ec2"],
        "detail-type": [INSTANCE_STATE_CHANGE],
        "detail": {"state": list(NOTIFIED_INSTANCE_STATES)},
    }


def launch_failures(asg_name: str) -> dict:
    """The ASG could not launch a replacement (no Spot capacity, for instance); only this ASG. notify tells every one,
    the capacity Lambda acts on those that are a lack of Spot capacity."""
    return {
        "source": ["aws.autoscaling"],
        "detail-type": [LAUNCH_UNSUCCESSFUL],
        "detail": {"AutoScalingGroupName": [_required("asg_name", asg_name)]},
    }


def instances_terminated(asg_name: str) -> dict:
    """The ASG terminated one of its instances (the scheduled stop, a stop by hand, a replacement); only this ASG. The
    capacity Lambda then looks whether the group is at zero."""
    return {
        "source": ["aws.autoscaling"],
        "detail-type": [TERMINATE_SUCCESSFUL],
        "detail": {"AutoScalingGroupName": [_required("asg_name", asg_name)]},
    }


def snapshot_failures() -> dict:
    """A failed EBS snapshot, created or copied (detail.event createSnapshot, copySnapshot, ...)."""
    return {"source": ["aws.ec2"], "detail-type": ["EBS Snapshot Notification"], "detail": {"result": ["failed"]}}


def dlm_policy_errors(policy_arn: str) -> dict:
    """This DLM policy went into the ERROR state; matched on the event's resources (the policy ARN)."""
    return {
        "source": ["aws.dlm"],
        "detail-type": ["DLM Policy State Change"],
        "resources": [_required("policy_arn", policy_arn)],
        "detail": {"state": ["ERROR"]},
    }


def alarm_raised(alarm_arn: str) -> dict:
    """This CloudWatch alarm went into ALARM; matched on the event's resources (the alarm ARN)."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": [ALARM_STATE_CHANGE],
        "resources": [_required("alarm_arn", alarm_arn)],
        "detail": {"state": {"value": ["ALARM"]}},
    }


def alarms_raised(alarm_arns: list[str]) -> dict:
    """Any of these CloudWatch alarms went into ALARM (the serverless cache's usage-limit alarms)."""
    if not alarm_arns:
        raise ValueError("alarm_arns must not be empty")
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": [ALARM_STATE_CHANGE],
        "resources": [_required("alarm_arn", arn) for arn in alarm_arns],
        "detail": {"state": {"value": ["ALARM"]}},
    }


def stack_events(stack: str) -> dict:
    """Every custom event of this stack, whatever its detail-type (for the notify Lambda)."""
    return {"source": [SOURCE], "detail": {"stack": [_required("stack", stack)]}}


def dataset_events(stack: str) -> dict:
    """This stack's host is ready with a dataset that needs the warm-up (empty: the data is lost), for the warmup
    Lambda, which checks the dataset again."""
    return {
        "source": [SOURCE],
        "detail-type": [HOST_READY.detail_type],
        "detail": {"stack": [_required("stack", stack)], "dataset": [str(dataset) for dataset in WARMUP_DATASETS]},
    }


def warmup_requests(stack: str) -> dict:
    """An operator asked for the warm-up of this stack's host (`spot-redis warmup`), for the warmup Lambda."""
    return {
        "source": [SOURCE],
        "detail-type": [WARMUP_REQUESTED.detail_type],
        "detail": {"stack": [_required("stack", stack)]},
    }


def warmup_task_stopped(cluster_arn: str, task_family: str) -> dict:
    """A task of the warm-up family stopped in this cluster (for the warmup Lambda)."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [cluster_arn],
            "lastStatus": ["STOPPED"],
            "taskDefinitionArn": [{"prefix": task_definition_prefix(cluster_arn, task_family)}],
        },
    }


def task_definition_prefix(cluster_arn: str, task_family: str) -> str:
    """The task definition ARN prefix of a family, in the cluster's partition, region and account.

    arn:PARTITION:ecs:REGION:ACCOUNT:task-definition/FAMILY: (then the revision).

    The trailing colon keeps family "warmup" from matching "warmup-v2".
    """
    cluster = _CLUSTER_ARN.match(cluster_arn)
    if not cluster:
        raise ValueError(f"not an ECS cluster ARN: {cluster_arn!r}")
    if not _TASK_FAMILY.match(task_family):
        raise ValueError(f"not an ECS task definition family: {task_family!r}")
    partition, region, account = cluster.group("partition", "region", "account")
    return f"arn:{partition}:ecs:{region}:{account}:task-definition/{task_family}:"


def _required(name: str, value: str) -> str:
    """A blank value would make a pattern that silently matches nothing."""
    if not value or not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value
