"""The drill's FIS experiment template (infra/drill.py), run under Pulumi's mocks with Pulumi.example.yaml."""

from __future__ import annotations

import json

import pytest

from spot_redis.events import STACK_TAG
from tests.unit.iam_lint import parliament_findings
from tests.unit.pulumi_harness import ACCOUNT, STACK, Run, example_config, run_program

REGION = example_config()["aws:region"]
TEMPLATE = "aws:fis/experimentTemplate:ExperimentTemplate"


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program()


def test_one_action_sends_a_spot_interruption_notice_two_minutes_ahead(run):
    (action,) = run.one(TEMPLATE).inputs["actions"]
    assert action["actionId"] == "aws:ec2:send-spot-instance-interruptions"
    assert action["parameters"] == [{"key": "durationBeforeInterruption", "value": "PT2M"}]
    (target,) = run.one(TEMPLATE).inputs["targets"]
    assert action["target"] == {"key": "SpotInstances", "value": target["name"]}


def test_the_target_is_one_running_spot_instance_of_this_stack(run):
    (target,) = run.one(TEMPLATE).inputs["targets"]
    assert target["resourceType"] == "aws:ec2:spot-instance"
    assert target["resourceTags"] == [{"key": STACK_TAG, "value": STACK}]
    assert target["filters"] == [{"path": "State.Name", "values": ["running"]}]
    assert target["selectionMode"] == "COUNT(1)"
    assert "resourceArns" not in target


def test_the_tag_it_looks_for_is_the_one_the_host_is_launched_with(run):
    templates = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    for template in templates:  # the host's, and the one its T types launch from
        specs = template.inputs["tagSpecifications"]
        instance_tags = next(spec["tags"] for spec in specs if spec["resourceType"] == "instance")
        assert instance_tags[STACK_TAG] == STACK


def test_no_stop_condition_and_no_empty_target(run):
    template = run.one(TEMPLATE).inputs
    assert template["stopConditions"] == [{"source": "none"}]
    assert template["experimentOptions"] == {"accountTargeting": "single-account", "emptyTargetResolutionMode": "fail"}


def test_the_experiment_logs_to_its_own_log_group(run):
    group = run.named("drill-logs")
    assert group.inputs["name"] == f"/spot-redis/{STACK}/drill"
    assert group.inputs["retentionInDays"] == example_config().get("spot-redis:logRetentionDays", 30)
    logging = run.one(TEMPLATE).inputs["logConfiguration"]
    assert logging["logSchemaVersion"] == 2
    assert logging["cloudwatchLogsConfiguration"] == {"logGroupArn": f"{group.outputs['arn']}:*"}
    assert "s3Configuration" not in logging


def test_log_delivery_may_write_to_that_group_only(run):
    group_arn = run.named("drill-logs").outputs["arn"]
    delivery = run.one("aws:cloudwatch/logResourcePolicy:LogResourcePolicy").inputs
    assert delivery["policyName"] == f"spot-redis-{STACK}-drill-log-delivery"
    (statement,) = json.loads(delivery["policyDocument"])["Statement"]
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert statement["Resource"] == f"{group_arn}:log-stream:*"
    assert {"drill-policy", "drill-log-delivery"} <= set(run.depends_on["drill-experiment"])


def test_the_role_is_trusted_by_this_accounts_fis_experiments_only(run):
    role = run.named("drill-role")
    assert run.one(TEMPLATE).inputs["roleArn"] == role.outputs["arn"]
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "fis.amazonaws.com"}
    assert statement["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:fis:{REGION}:{ACCOUNT}:experiment/*"}


def test_the_role_interrupts_only_instances_tagged_with_this_stack(run):
    policy = run.named("drill-policy").inputs
    assert policy["role"] == run.named("drill-role").outputs["id"]
    statements = json.loads(policy["policy"])["Statement"]
    (interrupt,) = [s for s in statements if "ec2:SendSpotInstanceInterruptions" in s["Action"]]
    assert interrupt["Resource"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"
    assert interrupt["Condition"] == {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": STACK}}
    assert not [s for s in statements if "logs:PutResourcePolicy" in s["Action"]]


def test_every_drill_document_passes_parliament(run):
    documents = [
        run.named("drill-role").inputs["assumeRolePolicy"],
        run.named("drill-policy").inputs["policy"],
        run.one("aws:cloudwatch/logResourcePolicy:LogResourcePolicy").inputs["policyDocument"],
    ]
    for document in documents:
        assert parliament_findings(document) == []


def test_the_template_and_its_role_carry_the_stack_tag(run):
    for name in ("drill-experiment", "drill-role", "drill-logs"):
        assert run.named(name).tags[STACK_TAG] == STACK


def test_another_stack_targets_its_own_host():
    run = run_program(stack="other")
    (target,) = run.one(TEMPLATE).inputs["targets"]
    assert target["resourceTags"] == [{"key": STACK_TAG, "value": "other"}]
    statements = json.loads(run.named("drill-policy").inputs["policy"])["Statement"]
    (interrupt,) = [s for s in statements if "ec2:SendSpotInstanceInterruptions" in s["Action"]]
    assert interrupt["Condition"] == {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": "other"}}
