"""The IAM policy documents of infra/iam_documents.py: parliament-clean and least privilege."""

from __future__ import annotations

import json
from typing import Any

import pytest
from parliament import iam_definition

from infra import iam_documents
from infra.iam_documents import (
    assume_role_policy,
    capacity_policy,
    drill_policy,
    fis_trust_policy,
    host_policy,
    log_delivery_policy,
    notify_policy,
    task_execution_policy,
    tls_only_bucket_policy,
    warmup_policy,
)
from tests.unit.iam_lint import ALLOWED_FINDINGS, SEVERITIES, assert_passes_parliament, parliament_findings

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
STACK = "staging"

VOLUME_ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-0123456789abcdef0"
CLOUDMAP_SERVICE_ARN = f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:service/srv-e4anhexample0004"
HOSTED_ZONE_ID = "Z0123456789ABCDEFGHIJ"
PARAMETER_ARNS = [
    f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/spot-redis/{STACK}/redis-password",
    f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/spot-redis/{STACK}/redis-maxmemory",
]
BUNDLE_BUCKET_ARN = f"arn:aws:s3:::spot-redis-{STACK}-bundles-{ACCOUNT}"
NOTIFY_LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/spot-redis-{STACK}-notify"
WARMUP_LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/spot-redis-{STACK}-warmup"
CAPACITY_LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/spot-redis-{STACK}-capacity"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/spot-redis-{STACK}-events"
SLACK_PARAMETER_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/spot-redis/{STACK}/slack-webhook-url"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:spot-redis-{STACK}-alerts"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/spot-redis-{STACK}"
TASK_FAMILY_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/spot-redis-{STACK}-warmup"
PASS_ROLE_ARNS = [
    f"arn:aws:iam::{ACCOUNT}:role/spot-redis-{STACK}-warmup-task",
    f"arn:aws:iam::{ACCOUNT}:role/spot-redis-{STACK}-warmup-execution",
]
APP_PASSWORD_PARAMETER_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/spot-redis/{STACK}/app-password"

ASG_NAME = f"spot-redis-{STACK}-redis"
GROUP_ARN = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/{ASG_NAME}"

SERVICES = ["ec2.amazonaws.com", "lambda.amazonaws.com", "dlm.amazonaws.com", "ecs-tasks.amazonaws.com"]

# Actions that have no resource-level permissions: "*" is the only Resource they accept. Checked against
# the Service Authorization data shipped with parliament below; nothing else may be granted on "*".
ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = frozenset(
    {
        "ec2:DescribeInstances",
        "ec2:DescribeVolumes",
        "ec2:DescribeTags",
        "autoscaling:DescribeScalingActivities",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeAutoScalingGroups",
        "servicediscovery:GetOperation",
        "logs:CreateLogDelivery",
    }
)

FAILURE_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:spot-redis-staging-failed-events"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:spot-redis-staging-failed-events-waiting"
DRILL_LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/spot-redis/{STACK}/drill"


def _host(**overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "stack": STACK,
        "region": REGION,
        "account_id": ACCOUNT,
        "volume_arn": VOLUME_ARN,
        "cloudmap_service_arn": CLOUDMAP_SERVICE_ARN,
        "hosted_zone_id": HOSTED_ZONE_ID,
        "parameter_arns": PARAMETER_ARNS,
        "bundle_bucket_arn": BUNDLE_BUCKET_ARN,
        "asg_name": ASG_NAME,
    }
    return host_policy(**(kwargs | overrides))


def _notify(**overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "log_group_arn": NOTIFY_LOG_GROUP_ARN,
        "table_arn": TABLE_ARN,
        "slack_parameter_arn": SLACK_PARAMETER_ARN,
        "topic_arn": TOPIC_ARN,
        "failure_queue_arn": FAILURE_QUEUE_ARN,
        "alarm_arn": ALARM_ARN,
        "region": REGION,
        "account_id": ACCOUNT,
    }
    return notify_policy(**(kwargs | overrides))


def _warmup(**overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "log_group_arn": WARMUP_LOG_GROUP_ARN,
        "table_arn": TABLE_ARN,
        "cluster_arn": CLUSTER_ARN,
        "task_definition_family_arn": TASK_FAMILY_ARN,
        "pass_role_arns": PASS_ROLE_ARNS,
        "failure_queue_arn": FAILURE_QUEUE_ARN,
        "region": REGION,
        "account_id": ACCOUNT,
    }
    return warmup_policy(**(kwargs | overrides))


def _capacity(**overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "log_group_arn": CAPACITY_LOG_GROUP_ARN,
        "table_arn": TABLE_ARN,
        "failure_queue_arn": FAILURE_QUEUE_ARN,
        "stack": STACK,
        "asg_name": ASG_NAME,
        "region": REGION,
        "account_id": ACCOUNT,
    }
    return capacity_policy(**(kwargs | overrides))


def _task_execution(**overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "app_password_parameter_arn": APP_PASSWORD_PARAMETER_ARN,
        "region": REGION,
        "account_id": ACCOUNT,
    }
    return task_execution_policy(**(kwargs | overrides))


def _drill(**overrides: Any) -> str:
    return drill_policy(**({"stack": STACK, "region": REGION, "account_id": ACCOUNT} | overrides))


def _fis_trust(**overrides: Any) -> str:
    return fis_trust_policy(**({"region": REGION, "account_id": ACCOUNT} | overrides))


def _log_delivery(**overrides: Any) -> str:
    kwargs = {"log_group_arn": DRILL_LOG_GROUP_ARN, "region": REGION, "account_id": ACCOUNT}
    return log_delivery_policy(**(kwargs | overrides))


DOCUMENTS: dict[str, str] = {
    **{f"trust-{service}": assume_role_policy(service) for service in SERVICES},
    "host": _host(),
    "notify": _notify(),
    "warmup": _warmup(),
    "capacity": _capacity(),
    "task-execution": _task_execution(),
    "bundle-bucket": tls_only_bucket_policy(BUNDLE_BUCKET_ARN),
    "trust-fis-experiments": _fis_trust(),
    "drill": _drill(),
    "drill-log-delivery": _log_delivery(),
}
RESOURCE_POLICIES = {"bundle-bucket", "drill-log-delivery"}
# The roles' permission policies (identity policies): not the trust policies, not the resource policies.
PERMISSION_DOCUMENTS = {
    name: doc for name, doc in DOCUMENTS.items() if not name.startswith("trust-") and name not in RESOURCE_POLICIES
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: str) -> list[dict[str, Any]]:
    return json.loads(document)["Statement"]


def _allowing(document: str, action: str) -> list[dict[str, Any]]:
    return [s for s in _statements(document) if s["Effect"] == "Allow" and action in _as_list(s["Action"])]


def _resources(statements: list[dict[str, Any]]) -> set[str]:
    return {r for s in statements for r in _as_list(s.get("Resource") or s.get("NotResource"))}


# --- parliament ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_document_passes_parliament(name: str) -> None:
    assert_passes_parliament(DOCUMENTS[name])


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ROLE_ARN = PASS_ROLE_ARNS[0]
BAD_DOCUMENTS = {
    "misspelt action": _policy(
        {"Sid": "Typo", "Effect": "Allow", "Action": "ec2:AttachVolumes", "Resource": VOLUME_ARN},
    ),
    "unknown service prefix": _policy(
        {"Sid": "Typo", "Effect": "Allow", "Action": "servicediscover:RegisterInstance", "Resource": "*"},
    ),
    "iam:PassRole on *": _policy(
        {"Sid": "PassAnyRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
    ),
    "iam:PassRole without iam:PassedToService": _policy(
        {"Sid": "PassRoleAnywhere", "Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE_ARN},
    ),
    "condition key the action does not support": _policy(
        {
            "Sid": "WrongKey",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
            "Condition": {"StringEquals": {"ecs:cluster": "spot-redis"}},
        },
    ),
    "resource of the wrong type": _policy(
        {"Sid": "WrongArn", "Effect": "Allow", "Action": "sns:Publish", "Resource": TABLE_ARN},
    ),
    "identity statement without Resource": _policy(
        {"Sid": "NoResource", "Effect": "Allow", "Action": "sns:Publish"},
    ),
    "attach a volume with no statement for the instance": _policy(
        {"Sid": "VolumeOnly", "Effect": "Allow", "Action": "ec2:AttachVolume", "Resource": VOLUME_ARN},
    ),
    "malformed JSON": '{"Version": "2012-10-17", "Statement": [',
}


@pytest.mark.parametrize("name", BAD_DOCUMENTS)
def test_severity_filter_catches_bad_documents(name: str) -> None:
    findings = parliament_findings(BAD_DOCUMENTS[name])
    assert findings, f"{name}: expected a finding of severity MEDIUM or worse"
    assert all(line.split()[0] in SEVERITIES[SEVERITIES.index("MEDIUM") :] for line in findings)
    with pytest.raises(AssertionError, match="parliament findings"):
        assert_passes_parliament(BAD_DOCUMENTS[name])


def test_allow_list_is_explicit_and_names_real_parliament_issues() -> None:
    from tests.unit import iam_lint

    assert sorted(a.issue for a in ALLOWED_FINDINGS) == [
        "MALFORMED",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "RESOURCE_MISMATCH",
    ]
    for allowed in ALLOWED_FINDINGS:
        assert allowed.issue in iam_lint._ISSUE_SEVERITY
        assert allowed.reason


def test_min_severity_is_honoured() -> None:
    # RESOURCE_STAR (LOW): a resource-level action on "*"; reported at LOW, not at MEDIUM.
    document = _policy({"Sid": "Star", "Effect": "Allow", "Action": "sns:Publish", "Resource": "*"})
    assert parliament_findings(document) == []
    assert any("RESOURCE_STAR" in line for line in parliament_findings(document, min_severity="LOW"))


# --- least privilege, all documents --------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_shape_and_readable_unique_sids(name: str) -> None:
    document = json.loads(DOCUMENTS[name])
    assert document["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in document["Statement"]:
        assert statement["Sid"].isalnum() and len(statement["Sid"]) >= 10
        if statement["Effect"] == "Deny":
            assert name == "bundle-bucket" or statement["Sid"] == "DenyParametersOfOtherStacks", statement["Sid"]
        else:
            assert statement["Effect"] == "Allow"
            assert not {"NotAction", "NotResource", "NotPrincipal"} & statement.keys()


def test_the_host_cannot_read_other_stacks_parameters_through_ssm_core() -> None:
    (deny,) = [s for s in _statements(DOCUMENTS["host"]) if s["Effect"] == "Deny"]
    allowed = next(s for s in _statements(DOCUMENTS["host"]) if s["Sid"] == "ReadOnlyStackParameters")
    assert {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"} <= set(deny["Action"])
    assert sorted(_as_list(deny["NotResource"])) == sorted(_as_list(allowed["Resource"]))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_no_wildcard_actions_are_allowed(name: str) -> None:
    for statement in _statements(DOCUMENTS[name]):
        if statement["Effect"] != "Allow":
            continue  # a Deny of s3:* (the TLS-only bucket policy) takes away, it grants nothing
        for action in _as_list(statement["Action"]):
            assert action not in ("*", "iam:*")
            assert "*" not in action and "?" not in action, action


@pytest.mark.parametrize("name", PERMISSION_DOCUMENTS)
def test_resource_star_only_for_actions_without_resource_level_permissions(name: str) -> None:
    for statement in _statements(PERMISSION_DOCUMENTS[name]):
        if "*" in _as_list(statement.get("Resource")):
            assert set(_as_list(statement["Action"])) <= ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS, statement


@pytest.mark.parametrize("action", sorted(ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS))
def test_star_actions_really_have_no_resource_level_permissions(action: str) -> None:
    prefix, name = action.split(":")
    service = next(s for s in iam_definition if s["prefix"] == prefix)
    privilege = next(p for p in service["privileges"] if p["privilege"] == name)
    assert all(r["resource_type"] == "" for r in privilege["resource_types"]), privilege["resource_types"]


@pytest.mark.parametrize("name", PERMISSION_DOCUMENTS)
def test_every_arn_is_in_partition_aws_and_account_region_bound(name: str) -> None:
    for statement in _statements(PERMISSION_DOCUMENTS[name]):
        for resource in _as_list(statement.get("Resource") or statement.get("NotResource")):
            if resource == "*":
                continue
            assert resource.startswith("arn:aws:"), resource
            _, _, service, region, account, _ = resource.split(":", 5)
            if service not in ("s3", "route53", "iam"):  # global services: no region in their ARNs
                assert region == REGION, resource
            if service not in ("s3", "route53") and not (service == "ec2" and "snapshot/" in resource):
                assert account == ACCOUNT, resource


@pytest.mark.parametrize("name", PERMISSION_DOCUMENTS)
def test_kms_decrypt_only_via_ssm(name: str) -> None:
    for statement in _allowing(PERMISSION_DOCUMENTS[name], "kms:Decrypt"):
        assert statement["Resource"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"
        assert statement["Condition"] == {"StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}}


def test_documents_are_deterministic() -> None:
    # Same inputs, same text: no spurious Pulumi diffs. Parameter and role lists are sorted and de-duplicated.
    assert _host() == _host(parameter_arns=[*reversed(PARAMETER_ARNS), PARAMETER_ARNS[0]])
    assert _warmup() == _warmup(pass_role_arns=list(reversed(PASS_ROLE_ARNS)))


# --- trust policies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_assume_role_policy_trusts_exactly_one_service(service: str) -> None:
    (statement,) = _statements(assume_role_policy(service))
    assert statement["Principal"] == {"Service": service}
    assert statement["Action"] == "sts:AssumeRole"
    assert "Resource" not in statement


def test_assume_role_policy_sid_is_readable() -> None:
    assert _statements(assume_role_policy("ecs-tasks.amazonaws.com"))[0]["Sid"] == "AllowEcsTasksToAssumeRole"


# --- the host ------------------------------------------------------------------------------------------------


def test_host_attaches_and_detaches_only_the_data_volume_on_stack_instances() -> None:
    document = _host()
    for action in ("ec2:AttachVolume", "ec2:DetachVolume"):
        statements = _allowing(document, action)
        assert _resources(statements) == {VOLUME_ARN, f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"}
        for statement in statements:
            if _as_list(statement["Resource"]) == [VOLUME_ARN]:
                continue
            assert _as_list(statement["Resource"]) == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"]
            assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/spot-redis:stack": STACK}}


def test_host_leaves_or_fails_only_the_stack_group() -> None:
    # The drain detaches the host from its group; a boot that cannot get the volume marks itself Unhealthy.
    document = _host()
    for action in ("autoscaling:DetachInstances", "autoscaling:SetInstanceHealth"):
        (statement,) = _allowing(document, action)
        assert _as_list(statement["Resource"]) == [GROUP_ARN]
        assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/spot-redis:stack": STACK}}
    assert _resources(_allowing(document, "autoscaling:DescribeAutoScalingInstances")) == {"*"}
    # The snapshot at the warning is gone with the bash boot: the drain detaches the volume instead.
    assert not _allowing(document, "ec2:CreateSnapshot")


def test_host_policy_refuses_a_group_name_with_a_wildcard() -> None:
    with pytest.raises(ValueError, match="asg_name"):
        _host(asg_name="spot-redis-*")


def test_host_registers_only_in_the_stack_cloud_map_service() -> None:
    document = _host()
    for action in ("RegisterInstance", "DeregisterInstance", "GetInstance"):
        action = f"servicediscovery:{action}"
        assert _resources(_allowing(document, action)) == {CLOUDMAP_SERVICE_ARN}
    changes = _allowing(document, "route53:ChangeResourceRecordSets")
    assert _resources(changes) == {f"arn:aws:route53:::hostedzone/{HOSTED_ZONE_ID}"}
    # Cloud Map also needs ec2:DescribeInstances (granted), and servicediscovery:GetOperation to poll.
    assert _allowing(document, "ec2:DescribeInstances")
    assert _resources(_allowing(document, "servicediscovery:GetOperation")) == {"*"}
    # A private DNS namespace has no Route 53 health checks: no health-check permission.
    actions = {a for s in _statements(document) for a in _as_list(s["Action"])}
    assert not {a for a in actions if "HealthCheck" in a}


def test_host_reads_only_its_parameters_and_bundles() -> None:
    document = _host()
    assert _resources(_allowing(document, "ssm:GetParameter")) == set(PARAMETER_ARNS)
    assert _resources(_allowing(document, "ssm:GetParameters")) == set(PARAMETER_ARNS)
    assert _resources(_allowing(document, "s3:GetObject")) == {f"{BUNDLE_BUCKET_ARN}/bundles/*"}


@pytest.mark.parametrize("name", ["host", "warmup", "capacity"])
def test_put_events_only_with_source_spot_redis(name: str) -> None:
    (statement,) = _allowing(DOCUMENTS[name], "events:PutEvents")
    assert statement["Resource"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"events:source": ["spot-redis"]},
        "Null": {"events:source": "false"},
    }


def test_no_other_document_puts_events() -> None:
    for name in ("notify", "task-execution"):
        assert not _allowing(DOCUMENTS[name], "events:PutEvents")


# --- the Lambdas and the warm-up task --------------------------------------------------------------------------


def test_notify_policy_grants() -> None:
    document = _notify()
    assert _resources(_allowing(document, "logs:PutLogEvents")) == {f"{NOTIFY_LOG_GROUP_ARN}:*"}
    assert _resources(_allowing(document, "dynamodb:UpdateItem")) == {TABLE_ARN}
    assert _resources(_allowing(document, "ssm:GetParameter")) == {SLACK_PARAMETER_ARN}
    assert _resources(_allowing(document, "sns:Publish")) == {TOPIC_ARN}
    assert _resources(_allowing(document, "cloudwatch:ListTagsForResource")) == {ALARM_ARN}
    for action in ("ec2:DescribeInstances", "ec2:DescribeTags", "autoscaling:DescribeScalingActivities"):
        assert _resources(_allowing(document, action)) == {"*"}


@pytest.mark.parametrize(
    "alarm_arn",
    [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*",
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:dashboard/spot-redis",
        f"arn:aws:sns:{REGION}:{ACCOUNT}:alarm:spot-redis",
    ],
)
def test_notify_reads_the_tags_of_one_alarm_only(alarm_arn: str) -> None:
    with pytest.raises(ValueError, match="alarm_arn"):
        _notify(alarm_arn=alarm_arn)


def test_warmup_runs_only_its_task_family_in_the_stack_cluster() -> None:
    document = _warmup()
    in_cluster = {"ArnEquals": {"ecs:cluster": CLUSTER_ARN}}
    (run,) = _allowing(document, "ecs:RunTask")
    assert run["Resource"] == f"{TASK_FAMILY_ARN}:*"
    assert run["Condition"] == in_cluster
    (describe,) = _allowing(document, "ecs:DescribeTasks")
    assert describe["Resource"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/spot-redis-{STACK}/*"
    assert describe["Condition"] == in_cluster


def test_warmup_reads_instance_tags_as_the_shared_ownership_test_does() -> None:
    """lambdas/common/ownership.py (notify's and warmup's) asks DescribeTags which stack an instance is of."""
    document = _warmup()
    assert _resources(_allowing(document, "ec2:DescribeTags")) == {"*"}
    assert not _allowing(document, "ec2:DescribeInstances")


def test_warmup_passes_only_its_task_roles_to_ecs_tasks() -> None:
    (statement,) = _allowing(_warmup(), "iam:PassRole")
    assert sorted(_as_list(statement["Resource"])) == sorted(PASS_ROLE_ARNS)
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_capacity_changes_only_the_stack_group_and_no_launch_template() -> None:
    """Its UpdateAutoScalingGroup sends the instances distribution only: no launch template, so neither
    ec2:RunInstances nor iam:PassRole nor ssm:GetParameters (which an update with a launch template also checks)."""
    document = _capacity()
    (update,) = _allowing(document, "autoscaling:UpdateAutoScalingGroup")
    assert _as_list(update["Resource"]) == [GROUP_ARN]
    assert update["Condition"] == {"StringEquals": {"aws:ResourceTag/spot-redis:stack": STACK}}
    assert _resources(_allowing(document, "autoscaling:DescribeAutoScalingGroups")) == {"*"}
    assert _resources(_allowing(document, "dynamodb:PutItem")) == {TABLE_ARN}
    assert _resources(_allowing(document, "logs:PutLogEvents")) == {f"{CAPACITY_LOG_GROUP_ARN}:*"}
    actions = {action for statement in _statements(document) for action in _as_list(statement["Action"])}
    assert not {action for action in actions if action.split(":")[0] in ("ec2", "iam", "ssm")}


def test_task_execution_reads_only_the_app_password() -> None:
    document = _task_execution()
    assert _resources(_allowing(document, "ssm:GetParameters")) == {APP_PASSWORD_PARAMETER_ARN}
    assert {a for s in _statements(document) for a in _as_list(s["Action"])} == {"ssm:GetParameters", "kms:Decrypt"}


# --- the drill's FIS experiment ----------------------------------------------------------------------------------


def test_the_drill_interrupts_only_the_stacks_instances() -> None:
    (statement,) = _allowing(_drill(), "ec2:SendSpotInstanceInterruptions")
    assert statement["Resource"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"
    assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/spot-redis:stack": STACK}}
    (describe,) = _allowing(_drill(), "ec2:DescribeInstances")
    assert describe["Condition"] == {"StringEquals": {"ec2:Region": REGION}}


def test_the_drill_role_sets_up_log_delivery_but_cannot_rewrite_log_resource_policies() -> None:
    document = _drill()
    assert _resources(_allowing(document, "logs:CreateLogDelivery")) == {"*"}
    for action in ("logs:DescribeLogGroups", "logs:DescribeResourcePolicies"):
        assert _resources(_allowing(document, action)) == {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"}
    actions = {a for s in _statements(document) for a in _as_list(s["Action"])}
    assert actions == {
        "ec2:SendSpotInstanceInterruptions",
        "ec2:DescribeInstances",
        "logs:CreateLogDelivery",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
    }


def test_only_this_accounts_experiments_may_assume_the_drill_role() -> None:
    (statement,) = _statements(_fis_trust())
    assert statement["Principal"] == {"Service": "fis.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:fis:{REGION}:{ACCOUNT}:experiment/*"},
    }


def test_log_delivery_may_write_only_the_drill_log_group() -> None:
    (statement,) = _statements(_log_delivery())
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == f"{DRILL_LOG_GROUP_ARN}:log-stream:*"
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_bundle_bucket_refuses_requests_without_tls() -> None:
    (statement,) = _statements(tls_only_bucket_policy(BUNDLE_BUCKET_ARN))
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [BUNDLE_BUCKET_ARN, f"{BUNDLE_BUCKET_ARN}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# --- inputs ------------------------------------------------------------------------------------------------------


def test_equivalent_input_forms_give_the_same_document() -> None:
    assert _host(hosted_zone_id=f"/hostedzone/{HOSTED_ZONE_ID}") == _host()
    assert _notify(log_group_arn=f"{NOTIFY_LOG_GROUP_ARN}:*") == _notify()
    assert _warmup(task_definition_family_arn=f"{TASK_FAMILY_ARN}:7") == _warmup()
    assert _log_delivery(log_group_arn=f"{DRILL_LOG_GROUP_ARN}:*") == _log_delivery()


class _NotAString:  # stands for a pulumi.Output passed by mistake outside .apply
    pass


@pytest.mark.parametrize(
    ("build", "overrides"),
    [
        (_host, {"region": "tokyo"}),
        (_host, {"account_id": "12345"}),
        (_host, {"stack": ""}),
        (_host, {"stack": "*"}),
        (_host, {"volume_arn": "vol-0123456789abcdef0"}),
        (_host, {"volume_arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*"}),
        (_host, {"volume_arn": f"arn:aws-cn:ec2:{REGION}:{ACCOUNT}:volume/vol-0123456789abcdef0"}),
        (_host, {"volume_arn": _NotAString()}),
        (_host, {"cloudmap_service_arn": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/ns-1"}),
        (_host, {"hosted_zone_id": "*"}),
        (_host, {"parameter_arns": []}),
        (_host, {"parameter_arns": PARAMETER_ARNS[0]}),
        (_host, {"bundle_bucket_arn": f"{BUNDLE_BUCKET_ARN}/bundles"}),
        (_notify, {"topic_arn": TABLE_ARN}),
        (_notify, {"log_group_arn": TABLE_ARN}),
        (_warmup, {"cluster_arn": "spot-redis-staging"}),
        (_warmup, {"pass_role_arns": [f"arn:aws:iam::{ACCOUNT}:role/*"]}),
        (_capacity, {"asg_name": "spot-redis-*"}),
        (_capacity, {"stack": "*"}),
        (_task_execution, {"app_password_parameter_arn": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/*"}),
        (_drill, {"stack": "*"}),
        (_drill, {"region": "tokyo"}),
        (_fis_trust, {"account_id": "12345"}),
        (_log_delivery, {"log_group_arn": TABLE_ARN}),
        (_log_delivery, {"log_group_arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"}),
    ],
)
def test_bad_inputs_are_refused(build: Any, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(overrides))):
        build(**overrides)


def test_tls_only_bucket_policy_refuses_object_arns() -> None:
    with pytest.raises(ValueError, match="bucket_arn"):
        tls_only_bucket_policy(f"{BUNDLE_BUCKET_ARN}/bundles/*")


def test_assume_role_policy_refuses_non_service_principals() -> None:
    for principal in ("*", "arn:aws:iam::123456789012:root", "ec2"):
        with pytest.raises(ValueError, match="service"):
            assume_role_policy(principal)


def test_module_constants() -> None:
    assert iam_documents.STACK_TAG_KEY == "spot-redis:stack"
    assert iam_documents.EVENT_SOURCE == "spot-redis"
