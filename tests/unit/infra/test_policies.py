"""Policies over every resource the example stack declares: the rules that hold whatever the program's structure."""

from __future__ import annotations

import inspect
import ipaddress
import json
import re
from functools import cache

import pulumi_aws
import pytest

from infra.compute import is_burstable
from infra.config import MAX_STACK_NAME
from tests.unit.iam_lint import parliament_findings
from tests.unit.pulumi_harness import STACK, Run, run_program

OPEN = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program()


@cache
def accepts_tags(type_token: str) -> bool:
    """Whether pulumi-aws's class for a type token takes `tags` (some resources cannot be tagged at all)."""
    package, module_path, class_name = type_token.split(":")
    if package != "aws":
        return False
    module = getattr(pulumi_aws, module_path.split("/")[0].replace("lambda", "lambda_"))
    return "tags" in inspect.signature(getattr(module, class_name)._internal_init).parameters


def test_the_tag_lookup_can_tell_taggable_from_untaggable():
    assert accepts_tags("aws:ec2/securityGroup:SecurityGroup")
    assert accepts_tags("aws:lambda/function:Function")
    assert not accepts_tags("aws:lambda/permission:Permission")
    assert not accepts_tags("aws:iam/rolePolicy:RolePolicy")


def test_every_taggable_resource_carries_the_stack_tag(run):
    taggable = [resource for resource in run.custom() if accepts_tags(resource.type)]
    assert len(taggable) > 30
    untagged = [
        r.name for r in taggable if r.type != "aws:autoscaling/group:Group" and r.tags.get("spot-redis:stack") != STACK
    ]
    assert not untagged
    group = run.one("aws:autoscaling/group:Group").inputs
    assert {"key": "spot-redis:stack", "value": STACK, "propagateAtLaunch": True} in group["tags"]


def test_all_volumes_and_disks_are_encrypted(run):
    volumes = run.of_type("aws:ebs/volume:Volume")
    assert volumes
    assert all(volume.inputs["encrypted"] is True for volume in volumes)
    for template in run.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        for mapping in template.inputs["blockDeviceMappings"]:
            assert mapping["ebs"]["encrypted"] == "true", mapping


def test_imdsv2_is_required(run):
    templates = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    assert all(template.inputs["metadataOptions"]["httpTokens"] == "required" for template in templates)


def ingress(run: Run) -> list[dict]:
    rules = [r.inputs for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    for group in run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in group.inputs.get("ingress") or []:
            rules += [{**rule, "cidrIpv4": cidr} for cidr in rule.get("cidrBlocks", [])]
            rules += [{**rule, "cidrIpv6": cidr} for cidr in rule.get("ipv6CidrBlocks", [])]
    return rules


def test_no_ingress_from_the_whole_internet(run):
    rules = ingress(run)
    assert rules
    for rule in rules:
        for key in ("cidrIpv4", "cidrIpv6"):
            if rule.get(key):
                assert ipaddress.ip_network(rule[key]) not in OPEN, rule


def test_no_ssh_ingress(run):
    for rule in ingress(run):
        low, high = rule.get("fromPort", 0), rule.get("toPort", 65535)
        assert rule.get("ipProtocol") != "-1", rule
        assert not low <= 22 <= high, rule


def test_the_auto_scaling_group_is_all_spot(run):
    groups = run.of_type("aws:autoscaling/group:Group")
    assert groups
    for group in groups:
        distribution = group.inputs["mixedInstancesPolicy"]["instancesDistribution"]
        assert distribution["onDemandBaseCapacity"] == 0
        assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
        assert "launchTemplate" not in group.inputs, "a plain launch template would bypass the mixed-instances policy"
    for template in run.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert "instanceMarketOptions" not in template.inputs, "a Spot launch template cannot be mixed"


def test_no_instance_type_launches_with_a_credit_setting_it_should_not_have(run):
    """Every T type launches with standard CPU credits (unlimited bills surplus credits); no other type launches from a
    template with a credit setting (it is for T types only)."""
    for instance_type, template in run.launch_template_of_each_type().items():
        credits = template.inputs.get("creditSpecification")
        if is_burstable(instance_type):
            assert credits == {"cpuCredits": "standard"}, instance_type
        else:
            assert credits is None, instance_type


def test_dlm_keeps_at_least_one_snapshot(run):
    policies = run.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    assert policies
    for policy in policies:
        schedules = policy.inputs["policyDetails"]["schedules"]
        assert 1 <= len(schedules) <= 4
        assert all(schedule["retainRule"]["count"] >= 1 for schedule in schedules)


def test_every_log_group_has_a_retention(run):
    groups = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == 5  # the warm-up task, the three Lambdas, the drill
    assert all(group.inputs.get("retentionInDays") == 30 for group in groups)


def test_every_lambda_logs_to_a_group_the_program_made(run):
    groups = {group.inputs["name"] for group in run.of_type("aws:cloudwatch/logGroup:LogGroup")}
    functions = run.of_type("aws:lambda/function:Function")
    assert functions
    assert all(function.inputs["loggingConfig"]["logGroup"] in groups for function in functions)


def iam_documents(run: Run) -> dict[str, str]:
    """Every IAM document the program makes: trust policies, inline policies, the bucket policy."""
    documents = {}
    for resource in run.custom():
        for key in ("assumeRolePolicy", "policy"):
            value = resource.inputs.get(key)
            if value and resource.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
                documents[f"{resource.name}.{key}"] = value
    return documents


def test_the_program_makes_the_iam_documents_expected(run):
    names = set(iam_documents(run))
    roles = {f"{role.name}.assumeRolePolicy" for role in run.of_type("aws:iam/role:Role")}
    assert roles == {
        "data-dlm.assumeRolePolicy",
        "host-role.assumeRolePolicy",
        "platform-warmup-execution.assumeRolePolicy",
        "notify-role.assumeRolePolicy",
        "warmup-role.assumeRolePolicy",
        "capacity-role.assumeRolePolicy",
        "drill-role.assumeRolePolicy",
    }
    assert {
        "host-policy.policy",
        "notify-policy.policy",
        "warmup-policy.policy",
        "capacity-policy.policy",
        "platform-warmup-execution-secrets.policy",
        "bundle-tls-only.policy",
        "drill-policy.policy",
    } <= names


def test_every_iam_document_passes_parliament(run):
    documents = iam_documents(run)
    for name, document in documents.items():
        json.loads(document)  # came through an apply: a JSON string, not an unresolved Output
        assert parliament_findings(document) == [], name


# AWS refuses what the mocks accept: the character sets and lengths of names and descriptions.
EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}$")
DLM_TEXT = re.compile(r"^[0-9A-Za-z _-]+$")


def test_security_group_and_rule_descriptions_use_the_characters_ec2_accepts(run):
    types = (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    )
    descriptions = [r.inputs["description"] for t in types for r in run.of_type(t)]
    assert len(descriptions) == 17
    assert [text for text in descriptions if not EC2_DESCRIPTION.match(text)] == []


def test_dlm_description_and_schedule_names_use_the_characters_dlm_accepts(run):
    (policy,) = run.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    names = [schedule["name"] for schedule in policy.inputs["policyDetails"]["schedules"]]
    for text in [policy.inputs["description"], *names]:
        assert DLM_TEXT.match(text) and len(text) <= 500, text


def test_the_longest_stack_name_fits_every_name_it_is_part_of():
    stack = "s" * MAX_STACK_NAME
    run = run_program(stack=stack)
    assert len(run.one("aws:s3/bucket:Bucket").inputs["bucketPrefix"]) <= 37
    limits = {  # AWS's limits on the names the program sets
        "aws:autoscaling/group:Group": 255,
        "aws:ecs/cluster:Cluster": 255,
        "aws:ecr/repository:Repository": 256,
        "aws:lambda/function:Function": 64,
        "aws:cloudwatch/eventRule:EventRule": 64,
        "aws:ecs/taskDefinition:TaskDefinition": 255,
    }
    for type_token, limit in limits.items():
        for resource in run.of_type(type_token):
            name = resource.inputs.get("name") or resource.inputs["family"]
            assert stack in name and len(name) <= limit, name


def test_fargate_spot_tasks_are_x86_64(run):
    (providers,) = run.of_type("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert providers.inputs["defaultCapacityProviderStrategies"][0]["capacityProvider"] == "FARGATE_SPOT"
    for task in run.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        assert task.inputs["runtimePlatform"]["cpuArchitecture"] == "X86_64", "ARM64 tasks cannot run on Fargate Spot"
