"""The on-demand fallback and the warm-up task's network, as the Pulumi program declares them (under Pulumi's mocks).

- spot-redis:onDemandFallback (default true): the capacity Lambda, packaged, logged, retried and kept on failure as
  the others, driven by two rules on this stack's group only, allowed to change this stack's group only; false: no
  function, no rule, no role.
- spot-redis:warmupPublicIp (default true): ASSIGN_PUBLIC_IP for the warm-up function; its security group admits
  nothing inbound, so that a public address exposes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit import pulumi_harness
from tests.unit.pulumi_harness import ACCOUNT, run_program

GROUP = "spot-redis-example-redis"
CAPACITY_RESOURCES = ("capacity-function", "capacity-role", "capacity-policy", "capacity-logs", "capacity-async")
CAPACITY_RULES = ("no-spot-capacity", "group-at-zero")


@pytest.fixture(scope="module")
def run() -> Any:
    return run_program()


@pytest.fixture(scope="module")
def without_fallback() -> Any:
    return run_program({"spot-redis:onDemandFallback": False, "spot-redis:warmupPublicIp": False})


def names(run: Any) -> set[str]:
    return {resource.name for resource in run.resources}


def rule_patterns(run: Any) -> dict[str, dict[str, Any]]:
    return {r.name: json.loads(r.inputs["eventPattern"]) for r in run.of_type("aws:cloudwatch/eventRule:EventRule")}


# --- the fallback on (the default) ----------------------------------------------------------------------------------


def test_the_capacity_function_is_packaged_logged_and_retried_as_the_others(run: Any) -> None:
    capacity = run.named("capacity-function").inputs
    notify = run.named("notify-function").inputs
    for key in ("runtime", "architectures", "handler", "memorySize", "layers"):
        assert capacity.get(key) == notify.get(key), key
    assert capacity["loggingConfig"]["logGroup"] == "/aws/lambda/spot-redis-example-capacity"
    assert capacity["environment"]["variables"] == {
        "STACK_NAME": "example",
        "IDEMPOTENCY_TABLE": run.one("aws:dynamodb/table:Table").outputs["name"],
        "ASG_NAME": GROUP,
    }
    files = capacity["code"].assets
    assert {"app.py", "common/launch_failures.py", "common/prices.py", "spot_redis/events.py"} <= set(files)

    invoke = run.named("capacity-async").inputs
    assert invoke["maximumRetryAttempts"] == run.named("notify-async").inputs["maximumRetryAttempts"] == 2
    queue = run.one("aws:sqs/queue:Queue").outputs["arn"]
    assert invoke["destinationConfig"]["onFailure"]["destination"] == queue


def test_the_rules_hear_this_stacks_group_only(run: Any) -> None:
    patterns = rule_patterns(run)
    assert patterns["no-spot-capacity"] == patterns["launch-failures"]  # notify tells every failure, capacity acts
    assert patterns["no-spot-capacity"]["detail-type"] == ["EC2 Instance Launch Unsuccessful"]
    assert patterns["group-at-zero"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance Terminate Successful"],
        "detail": {"AutoScalingGroupName": [GROUP]},
    }
    targets = {t.inputs["rule"]: t.inputs for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget")}
    for name in CAPACITY_RULES:
        target = targets[f"spot-redis-example-{name}"]
        assert target["arn"] == run.named("capacity-function").outputs["arn"]
        assert target["retryPolicy"] == targets["spot-redis-example-launch-failures"]["retryPolicy"]


def test_the_capacity_role_changes_only_this_stacks_group(run: Any) -> None:
    statements = json.loads(run.named("capacity-policy").inputs["policy"])["Statement"]
    [update] = [s for s in statements if "autoscaling:UpdateAutoScalingGroup" in s["Action"]]
    assert update["Action"] == ["autoscaling:UpdateAutoScalingGroup"]
    assert (
        update["Resource"]
        == f"arn:aws:autoscaling:ap-northeast-1:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/{GROUP}"
    )
    assert update["Condition"] == {"StringEquals": {"aws:ResourceTag/spot-redis:stack": "example"}}
    actions = {action for statement in statements for action in statement["Action"]}
    assert not {a for a in actions if a.startswith(("ec2:", "iam:", "ssm:"))}, "no launch template in its update"
    group_tags = {tag["key"]: tag["value"] for tag in run.one("aws:autoscaling/group:Group").inputs["tags"]}
    assert group_tags["spot-redis:stack"] == "example", "the condition's tag is on the group"


def test_notify_knows_the_fallback_is_on(run: Any) -> None:
    assert run.named("notify-function").inputs["environment"]["variables"]["ON_DEMAND_FALLBACK"] == "true"


def group_ignore_changes(monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]) -> list[str]:
    """The Auto Scaling group's ignore_changes, as the program declares it with ``overrides``."""
    seen: dict[str, list[str]] = {}
    record = pulumi_harness.Run.record_options

    def record_and_look(self: Any, args: Any) -> None:
        if args.name == "host-group":
            seen["ignore_changes"] = list(args.opts.ignore_changes or [])
        record(self, args)

    monkeypatch.setattr(pulumi_harness.Run, "record_options", record_and_look)
    run_program(overrides)
    return seen["ignore_changes"]


@pytest.mark.parametrize(("fallback", "ignored"), [(True, True), (False, False)])
def test_pulumi_up_leaves_the_on_demand_base_to_the_fallback(
    monkeypatch: pytest.MonkeyPatch, fallback: bool, ignored: bool
) -> None:
    """A `pulumi up` while the group runs on-demand must not set it back to Spot under a serving host."""
    ignore_changes = group_ignore_changes(monkeypatch, {"spot-redis:onDemandFallback": fallback})
    assert ("mixedInstancesPolicy.instancesDistribution.onDemandBaseCapacity" in ignore_changes) is ignored
    assert "desiredCapacity" in ignore_changes  # the schedules own it, as before


# --- the fallback off -----------------------------------------------------------------------------------------------


def test_without_the_fallback_there_is_no_function_no_rule_and_no_role(run: Any, without_fallback: Any) -> None:
    assert set(CAPACITY_RESOURCES + CAPACITY_RULES) <= names(run)
    assert not set(CAPACITY_RESOURCES + CAPACITY_RULES) & names(without_fallback)
    assert not [f for f in without_fallback.of_type("aws:lambda/function:Function") if "capacity" in f.name]
    assert set(rule_patterns(without_fallback)) & set(CAPACITY_RULES) == set()
    variables = without_fallback.named("notify-function").inputs["environment"]["variables"]
    assert variables["ON_DEMAND_FALLBACK"] == "false"


# --- the warm-up task's network -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "assign"), [("run", "ENABLED"), ("without_fallback", "DISABLED")])
def test_the_warmup_public_address_follows_the_setting(request: Any, fixture: str, assign: str) -> None:
    program = request.getfixturevalue(fixture)
    assert program.named("warmup-function").inputs["environment"]["variables"]["ASSIGN_PUBLIC_IP"] == assign


def test_the_warmup_security_group_admits_nothing_inbound(run: Any) -> None:
    """With a public address (the default), the task is reachable from the internet unless its group refuses."""
    warmup_group = run.named("example-warmup")
    assert not warmup_group.inputs.get("ingress")
    inbound = [
        rule
        for rule in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        + run.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")
        if rule.inputs.get("securityGroupId") == warmup_group.outputs["id"] and rule.inputs.get("type") != "egress"
    ]
    assert inbound == []
    assert (
        run.named("warmup-function").inputs["environment"]["variables"]["SECURITY_GROUP_IDS"]
        == (warmup_group.outputs["id"])
    )
