"""Every IAM policy document the Pulumi program makes, as pure functions returning JSON strings.

Inputs are plain strings (the program calls these inside ``Output.all(...).apply``), so the documents
can be tested without Pulumi. Partition is always ``aws``. Each statement has a readable ``Sid``.

Action names, resource ARN formats and condition keys follow the Service Authorization Reference
(the copy shipped with parliament is what the unit tests check against) and these service guides:

- Cloud Map "API permissions reference": RegisterInstance needs servicediscovery:RegisterInstance,
  route53:ChangeResourceRecordSets and ec2:DescribeInstances, plus route53 Create/Get/UpdateHealthCheck
  (DeregisterInstance: Get/Delete/UpdateHealthCheck) only when the service has a Route 53 health check.
  ``HealthCheckConfig`` exists for public DNS namespaces only, and the stack's namespace is a private DNS
  namespace, so no health-check permission is granted. servicediscovery:GetOperation has no resource type.
- ECS: task ARNs are ``task/<cluster name>/<task id>``; RunTask and DescribeTasks support ``ecs:cluster``.
- EventBridge: PutEvents supports ``events:source``, a multivalued key (one value per entry of the request),
  hence ``ForAllValues:StringEquals`` as in the EventBridge example policies, plus a ``Null`` check so that a
  request without the key cannot match vacuously.
- Auto Scaling: DescribeAutoScalingGroups has no resource-level permissions; UpdateAutoScalingGroup takes the group's
  ARN (``autoScalingGroup:<uuid>:autoScalingGroupName/<name>``) and ``aws:ResourceTag``. Creating or updating a group
  *with a launch template* also checks ec2:RunInstances, iam:PassRole (a template with an instance profile) and
  ssm:GetParameters (an AMI from an SSM parameter) (Auto Scaling guide, "Control Amazon EC2 launch template usage");
  the capacity Lambda's update names no launch template (its InstancesDistribution only), so none is granted.
- FIS: the experiment role of ``aws:ec2:send-spot-instance-interruptions`` needs ec2:SendSpotInstanceInterruptions
  (instance resources, ``aws:ResourceTag`` supported) and ec2:DescribeInstances to resolve the target. Its trust
  policy names the account's experiments (``aws:SourceAccount``, ``aws:SourceArn``) against the confused deputy.
  Experiment logging to CloudWatch Logs is a "vended log" delivery (CloudWatch Logs guide, "Logs sent to CloudWatch
  Logs"): logs:CreateLogDelivery, plus logs:PutResourcePolicy when the log group's resource policy does not yet let
  delivery.logs.amazonaws.com write. The program writes that resource policy itself, so the role never gets
  PutResourcePolicy (it would let the role rewrite every log resource policy of the account).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from spot_redis.events import SOURCE as EVENT_SOURCE
from spot_redis.events import STACK_TAG as STACK_TAG_KEY

PARTITION = "aws"
POLICY_VERSION = "2012-10-17"
ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
FIS_SERVICE = "fis.amazonaws.com"
LOG_DELIVERY_SERVICE = "delivery.logs.amazonaws.com"

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_SERVICE_PRINCIPAL_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.amazonaws\.com$")
_HOSTED_ZONE_RE = re.compile(r"^[A-Z0-9]+$")

Statement = dict[str, Any]


# --- input checks: a wrong value should fail here, with its name, not at `pulumi up` ------------------------


def _check(name: str, value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def _stack(value: object) -> str:
    if not isinstance(value, str) or not value or "*" in value or "?" in value:
        raise ValueError(f"stack must be a non-empty name without wildcards, got {value!r}")
    return value


def _region(value: object) -> str:
    return _check("region", value, _REGION_RE, "an AWS region such as ap-northeast-1")


def _account(value: object) -> str:
    return _check("account_id", value, _ACCOUNT_RE, "a 12-digit AWS account id")


def _arn(name: str, value: object, service: str, resource_prefix: str = "") -> str:
    """An ARN of the given service (and resource type prefix), without wildcards."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a plain string ARN (call this inside Output.apply), got {value!r}")
    prefix = f"arn:{PARTITION}:{service}:"
    parts = value.split(":", 5)
    if not value.startswith(prefix) or len(parts) != 6 or "*" in value or "?" in value:
        raise ValueError(f"{name} must be an arn:{PARTITION}:{service}:... ARN without wildcards, got {value!r}")
    if resource_prefix and not parts[5].startswith(resource_prefix):
        raise ValueError(f"{name} must be a {service} {resource_prefix!r} ARN, got {value!r}")
    return value


def _arns(name: str, values: object, service: str, resource_prefix: str = "") -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a list of ARNs, got {values!r}")
    arns = [_arn(f"{name}[{i}]", v, service, resource_prefix) for i, v in enumerate(values)]
    if not arns:
        raise ValueError(f"{name} must name at least one ARN")
    return sorted(set(arns))


# --- document building ------------------------------------------------------------------------------------


def _statement(
    sid: str,
    actions: Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, dict[str, Any]] | None = None,
) -> Statement:
    statement: Statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": resources if isinstance(resources, str) else list(resources),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _document(*statements: Statement) -> str:
    sids = [s["Sid"] for s in statements]
    if len(sids) != len(set(sids)):  # pragma: no cover - a programming error, caught by the unit tests
        raise AssertionError(f"duplicate Sid in {sids}")
    return json.dumps({"Version": POLICY_VERSION, "Statement": list(statements)}, indent=2)


# --- statements shared by several roles -------------------------------------------------------------------


def _keep_failed_events(queue_arn: str) -> Statement:
    """Lambda's on-failure destination: an event the function failed on, after its retries, is kept there."""
    return _statement("SendFailedEventsToOwnQueue", ["sqs:SendMessage"], _arn("failure_queue_arn", queue_arn, "sqs"))


def _decrypt_parameters_via_ssm(region: str, account_id: str) -> Statement:
    # SecureString parameters use the aws/ssm key (or a customer key); only SSM, on the role's behalf, may use it.
    return _statement(
        "DecryptParametersOnlyViaSsm",
        ["kms:Decrypt"],
        f"arn:{PARTITION}:kms:{region}:{account_id}:key/*",
        {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"}},
    )


def _put_spot_redis_events(region: str, account_id: str) -> Statement:
    return _statement(
        "PutOnlySpotRedisEventsOnDefaultBus",
        ["events:PutEvents"],
        f"arn:{PARTITION}:events:{region}:{account_id}:event-bus/default",
        {
            "ForAllValues:StringEquals": {"events:source": [EVENT_SOURCE]},
            "Null": {"events:source": "false"},
        },
    )


def _describe_ec2(region: str, actions: Sequence[str]) -> Statement:
    # EC2 Describe* actions have no resource-level permissions: "*" is the only resource; limit the region.
    return _statement(
        "DescribeEc2NoResourceLevelPermissions",
        actions,
        "*",
        {"StringEquals": {"ec2:Region": region}},
    )


def _asg_name(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,255}", value):
        raise ValueError(f"asg_name must be an Auto Scaling group name, got {value!r}")
    return value


def _group_arn(region: str, account_id: str, asg_name: str) -> str:
    """The group's ARN, whatever the id Auto Scaling gave it."""
    return f"arn:{PARTITION}:autoscaling:{region}:{account_id}:autoScalingGroup:*:autoScalingGroupName/{asg_name}"


def _write_own_logs(log_group_arn: str) -> Statement:
    group = _arn("log_group_arn", log_group_arn.removesuffix(":*"), "logs", "log-group:")
    return _statement("WriteOwnLogStreams", ["logs:CreateLogStream", "logs:PutLogEvents"], f"{group}:*")


def _use_table(table_arn: str) -> Statement:
    return _statement(
        "UseIdempotencyTableItems",
        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
        _arn("table_arn", table_arn, "dynamodb", "table/"),
    )


# --- public documents -------------------------------------------------------------------------------------


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service principal (e.g. ``ec2.amazonaws.com``) assume the role."""
    _check("service", service, _SERVICE_PRINCIPAL_RE, "an AWS service principal such as ec2.amazonaws.com")
    name = "".join(part.capitalize() for part in re.split(r"[.-]", service.removesuffix(".amazonaws.com")))
    return _document(
        {
            "Sid": f"Allow{name}ToAssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
    )


def host_policy(
    *,
    stack: str,
    region: str,
    account_id: str,
    volume_arn: str,
    cloudmap_service_arn: str,
    hosted_zone_id: str,
    parameter_arns: list[str],
    bundle_bucket_arn: str,
    asg_name: str,
) -> str:
    """The Spot host's role (AmazonSSMManagedInstanceCore is attached beside it): what the host agent
    (spot_redis/agent) calls at boot and in its drain."""
    stack, region, account_id = _stack(stack), _region(region), _account(account_id)
    volume = _arn("volume_arn", volume_arn, "ec2", "volume/")
    service = _arn("cloudmap_service_arn", cloudmap_service_arn, "servicediscovery", "service/")
    zone_id = _check(
        "hosted_zone_id",
        hosted_zone_id.removeprefix("/hostedzone/") if isinstance(hosted_zone_id, str) else hosted_zone_id,
        _HOSTED_ZONE_RE,
        "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ",
    )
    parameters = _arns("parameter_arns", parameter_arns, "ssm", "parameter/")
    bucket = _arn("bundle_bucket_arn", bundle_bucket_arn, "s3")
    if "/" in bucket:
        raise ValueError(f"bundle_bucket_arn must be a bucket ARN, not an object ARN, got {bucket!r}")
    instances = f"arn:{PARTITION}:ec2:{region}:{account_id}:instance/*"
    group = _group_arn(region, account_id, _asg_name(asg_name))
    volume_actions = ["ec2:AttachVolume", "ec2:DetachVolume"]

    return _document(
        # The data volume: attach/detach only this volume, and only to/from instances of this stack. AttachVolume
        # authorizes the volume and the instance separately, so the two may come from two statements.
        _statement("AttachDetachOnlyStackDataVolume", volume_actions, volume),
        _statement(
            "AttachDetachOnlyOnStackInstances",
            volume_actions,
            instances,
            {"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack}},
        ),
        _describe_ec2(region, ["ec2:DescribeInstances", "ec2:DescribeVolumes"]),
        # The drain leaves the group (so that the replacement starts at once); a boot that cannot get the volume
        # marks itself Unhealthy (so that it is replaced). Only this stack's group.
        _statement(
            "LeaveOrFailOnlyStackGroup",
            ["autoscaling:DetachInstances", "autoscaling:SetInstanceHealth"],
            group,
            {"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack}},
        ),
        _statement("FindOwnGroupNoResourceLevelPermissions", ["autoscaling:DescribeAutoScalingInstances"], "*"),
        # Cloud Map: register/deregister only in the stack's service; Cloud Map writes the records in the
        # namespace's hosted zone with the caller's permissions.
        _statement(
            "RegisterOnlyInStackCloudMapService",
            [
                "servicediscovery:RegisterInstance",
                "servicediscovery:DeregisterInstance",
                "servicediscovery:GetInstance",
            ],
            service,
        ),
        _statement(
            "ChangeRecordsOnlyInStackNamespaceZone",
            ["route53:ChangeResourceRecordSets"],
            f"arn:{PARTITION}:route53:::hostedzone/{zone_id}",
        ),
        _statement("PollCloudMapOperationsNoResourceLevelPermissions", ["servicediscovery:GetOperation"], "*"),
        # Settings and secrets: only the stack's parameters.
        _statement("ReadOnlyStackParameters", ["ssm:GetParameter", "ssm:GetParameters"], parameters),
        # AmazonSSMManagedInstanceCore, attached beside this policy, allows reading every parameter of the
        # account; with kms:Decrypt via SSM that would reach other stacks' secrets. An explicit deny wins.
        {
            "Sid": "DenyParametersOfOtherStacks",
            "Effect": "Deny",
            "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"],
            "NotResource": sorted(parameters),
        },
        _decrypt_parameters_via_ssm(region, account_id),
        _statement("ReadOnlyAnsibleBundles", ["s3:GetObject"], f"{bucket}/bundles/*"),
        _put_spot_redis_events(region, account_id),
    )


def notify_policy(
    *,
    log_group_arn: str,
    table_arn: str,
    slack_parameter_arn: str,
    topic_arn: str,
    failure_queue_arn: str,
    alarm_arn: str,
    region: str,
    account_id: str,
    other_alarm_arns: Sequence[str] = (),
) -> str:
    """The notify Lambda's role: Slack (webhook from SSM), SNS fallback, idempotency table, and the tags of the
    failed-events alarm and of ``other_alarm_arns`` (the serverless cache's alarms): its ownership test."""
    alarms = _arn("alarm_arn", alarm_arn, "cloudwatch", "alarm:")
    if other_alarm_arns:
        alarms = [alarms, *_arns("other_alarm_arns", list(other_alarm_arns), "cloudwatch", "alarm:")]
    region, account_id = _region(region), _account(account_id)
    return _document(
        _write_own_logs(log_group_arn),
        _use_table(table_arn),
        _keep_failed_events(failure_queue_arn),
        _statement(
            "ReadOnlySlackWebhookParameter",
            ["ssm:GetParameter"],
            _arn("slack_parameter_arn", slack_parameter_arn, "ssm", "parameter/"),
        ),
        _decrypt_parameters_via_ssm(region, account_id),
        _statement("PublishOnlyToFallbackTopic", ["sns:Publish"], _arn("topic_arn", topic_arn, "sns")),
        _statement("ReadOnlyFailedEventsAlarmTags", ["cloudwatch:ListTagsForResource"], alarms),
        _describe_ec2(region, ["ec2:DescribeInstances", "ec2:DescribeTags"]),
        _statement(
            "DescribeScalingActivitiesNoResourceLevelPermissions",
            ["autoscaling:DescribeScalingActivities"],
            "*",
        ),
    )


def warmup_policy(
    *,
    log_group_arn: str,
    table_arn: str,
    cluster_arn: str,
    task_definition_family_arn: str,
    pass_role_arns: list[str],
    region: str,
    failure_queue_arn: str,
    account_id: str,
) -> str:
    """The warm-up Lambda's role: run the warm-up task (any revision of its family) in the stack's cluster."""
    region, account_id = _region(region), _account(account_id)
    cluster = _arn("cluster_arn", cluster_arn, "ecs", "cluster/")
    cluster_name = cluster.split(":", 5)[5].removeprefix("cluster/")
    # Accept the family ARN with or without a revision; every revision of the family may run.
    family = _arn("task_definition_family_arn", task_definition_family_arn, "ecs", "task-definition/")
    family = re.sub(r":\d+$", "", family)
    in_cluster = {"ArnEquals": {"ecs:cluster": cluster}}
    return _document(
        _write_own_logs(log_group_arn),
        _use_table(table_arn),
        _keep_failed_events(failure_queue_arn),
        # lambdas/common/ownership.py reads an instance's stack tag with DescribeTags.
        _describe_ec2(region, ["ec2:DescribeTags"]),
        _statement("RunOnlyWarmupTaskInStackCluster", ["ecs:RunTask"], f"{family}:*", in_cluster),
        _statement(
            "DescribeOnlyTasksInStackCluster",
            ["ecs:DescribeTasks"],
            f"arn:{PARTITION}:ecs:{region}:{account_id}:task/{cluster_name}/*",
            in_cluster,
        ),
        _statement(
            "PassOnlyWarmupTaskRolesToEcsTasks",
            ["iam:PassRole"],
            _arns("pass_role_arns", pass_role_arns, "iam", "role/"),
            {"StringEquals": {"iam:PassedToService": ECS_TASKS_SERVICE}},
        ),
        _put_spot_redis_events(region, account_id),
    )


def capacity_policy(
    *,
    log_group_arn: str,
    table_arn: str,
    failure_queue_arn: str,
    stack: str,
    asg_name: str,
    region: str,
    account_id: str,
) -> str:
    """The capacity Lambda's role (the on-demand fallback): read the stack's group, change its mixed instances policy,
    and announce it."""
    stack, region, account_id = _stack(stack), _region(region), _account(account_id)
    return _document(
        _write_own_logs(log_group_arn),
        _use_table(table_arn),
        _keep_failed_events(failure_queue_arn),
        _statement("DescribeGroupsNoResourceLevelPermissions", ["autoscaling:DescribeAutoScalingGroups"], "*"),
        _statement(
            "UpdateOnlyStackGroup",
            ["autoscaling:UpdateAutoScalingGroup"],
            _group_arn(region, account_id, _asg_name(asg_name)),
            {"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack}},
        ),
        _put_spot_redis_events(region, account_id),
    )


def task_execution_policy(*, app_password_parameter_arn: str, region: str, account_id: str) -> str:
    """The warm-up task's execution role (beside AmazonECSTaskExecutionRolePolicy): inject the app password."""
    region, account_id = _region(region), _account(account_id)
    return _document(
        _statement(
            "ReadOnlyAppPasswordParameter",
            ["ssm:GetParameters"],
            _arn("app_password_parameter_arn", app_password_parameter_arn, "ssm", "parameter/"),
        ),
        _decrypt_parameters_via_ssm(region, account_id),
    )


def fis_trust_policy(*, region: str, account_id: str) -> str:
    """Trust policy of a FIS experiment role: only this account's experiments in this region may assume it."""
    region, account_id = _region(region), _account(account_id)
    return _document(
        {
            "Sid": "AllowFisExperimentsOfThisAccountToAssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": FIS_SERVICE},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{PARTITION}:fis:{region}:{account_id}:experiment/*"},
            },
        }
    )


def drill_policy(*, stack: str, region: str, account_id: str) -> str:
    """The drill's FIS experiment role: send a Spot interruption notice to this stack's instances only, and set up
    the experiment's log delivery (the log group's resource policy is :func:`log_delivery_policy`)."""
    stack, region, account_id = _stack(stack), _region(region), _account(account_id)
    return _document(
        _statement(
            "InterruptOnlyStackInstances",
            ["ec2:SendSpotInstanceInterruptions"],
            f"arn:{PARTITION}:ec2:{region}:{account_id}:instance/*",
            {"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack}},
        ),
        _describe_ec2(region, ["ec2:DescribeInstances"]),
        _statement("CreateLogDeliveryNoResourceLevelPermissions", ["logs:CreateLogDelivery"], "*"),
        # What log delivery reads to find the resource policy already there. The CloudWatch Logs guide asks for
        # `log-group:*` on these (not one group's ARN).
        _statement(
            "ReadLogResourcePoliciesForDelivery",
            ["logs:DescribeLogGroups", "logs:DescribeResourcePolicies"],
            f"arn:{PARTITION}:logs:{region}:{account_id}:log-group:*",
        ),
    )


def log_delivery_policy(*, log_group_arn: str, region: str, account_id: str) -> str:
    """CloudWatch Logs resource policy: AWS log delivery (on behalf of this account's resources) may write to one log
    group, as the policy CloudWatch Logs would create itself for a vended log delivery."""
    region, account_id = _region(region), _account(account_id)
    group = _arn("log_group_arn", log_group_arn.removesuffix(":*"), "logs", "log-group:")
    return _document(
        {
            "Sid": "AllowLogDeliveryToWriteOneGroup",
            "Effect": "Allow",
            "Principal": {"Service": LOG_DELIVERY_SERVICE},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{group}:log-stream:*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{PARTITION}:logs:{region}:{account_id}:*"},
            },
        }
    )


def tls_only_bucket_policy(bucket_arn: str) -> str:
    """Bucket policy of the Ansible bundle bucket: refuse every request that does not use TLS."""
    bucket = _arn("bucket_arn", bucket_arn, "s3")
    if "/" in bucket:
        raise ValueError(f"bucket_arn must be a bucket ARN, not an object ARN, got {bucket!r}")
    return _document(deny_without_tls(bucket, sid="DenyRequestsWithoutTls"))


def deny_without_tls(bucket_arn: str, sid: str) -> Statement:
    """The bucket policy statement that refuses every request to the bucket and its objects made without TLS."""
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
