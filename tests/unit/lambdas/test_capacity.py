"""lambdas/capacity with moto (Auto Scaling, EC2, DynamoDB, EventBridge): the on-demand fallback and the return to Spot.

The group is made as infra/compute.py makes it (support.make_group); support.AwsUpdateSemantics makes moto update a
mixed instances policy as AWS does and keeps each request, so that the tests check what the function sends (no
launch template) and what the group becomes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from spot_redis.events import BACK_TO_SPOT, ON_DEMAND
from tests.unit import lambda_support as support

app = support.load_lambda("capacity")
notify = support.load_lambda("notify")

from common import idempotency  # noqa: E402 - lambdas/ is on sys.path once lambda_support is imported
from common.launch_failures import LaunchFailure, classify  # noqa: E402
from common.prices import AS_OF, PRICES, hourly_price  # noqa: E402
from common.runtime import clients  # noqa: E402

GROUP = support.GROUP
TYPES = support.GROUP_TYPES
DISTRIBUTION = support.GROUP_DISTRIBUTION
NO_SPOT_CAPACITY = support.NO_SPOT_CAPACITY_EVENT
TERMINATED = support.TERMINATED_EVENT


@dataclass
class World:
    autoscaling: support.AwsUpdateSemantics
    events: support.RecordingEvents
    context: support.FakeContext = field(default_factory=support.FakeContext)

    def run(self, event: dict[str, Any]) -> dict[str, Any]:
        return app.handler(event, self.context)

    def group(self) -> dict[str, Any]:
        (group,) = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
        return group

    def on_demand_base(self) -> int:
        return self.group()["MixedInstancesPolicy"]["InstancesDistribution"]["OnDemandBaseCapacity"]

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        return [(entry["DetailType"], json.loads(entry["Detail"])) for entry in self.events.entries]


@pytest.fixture
def world() -> Iterator[World]:
    settings = {"STACK_NAME": support.STACK, "IDEMPOTENCY_TABLE": support.NOTIFY_TABLE, "ASG_NAME": GROUP}
    with support.aws(settings):
        support.make_idempotency_table(support.NOTIFY_TABLE)
        world = World(
            support.AwsUpdateSemantics(support.client("autoscaling")), support.RecordingEvents(support.client("events"))
        )
        clients.set("autoscaling", world.autoscaling)
        clients.set("events", world.events)
        idempotency.reset()
        try:
            yield world
        finally:
            idempotency.reset()


def no_spot_capacity(**detail: Any) -> dict[str, Any]:
    return support.load_event(NO_SPOT_CAPACITY, id=str(uuid.uuid4()), detail=detail)


def terminated(**detail: Any) -> dict[str, Any]:
    return support.load_event(TERMINATED, id=str(uuid.uuid4()), detail=detail)


# --- no Spot capacity: on-demand ------------------------------------------------------------------------------------


def test_no_spot_capacity_switches_the_group_to_on_demand_and_says_what_it_costs(world: World) -> None:
    support.make_group(desired=1)
    result = world.run(no_spot_capacity())

    assert result["action"] == "switched", result
    # Only the on-demand base changes; the rest of the distribution is sent as the group has it, no launch template.
    [update] = world.autoscaling.updates
    assert update == {
        "AutoScalingGroupName": GROUP,
        "MixedInstancesPolicy": {"InstancesDistribution": {**DISTRIBUTION, "OnDemandBaseCapacity": 1}},
    }
    policy = world.group()["MixedInstancesPolicy"]
    assert policy["InstancesDistribution"]["OnDemandBaseCapacity"] == 1
    assert policy["InstancesDistribution"]["SpotAllocationStrategy"] == "price-capacity-optimized"
    assert [override["InstanceType"] for override in policy["LaunchTemplate"]["Overrides"]] == TYPES

    [(detail_type, detail)] = world.sent()
    assert detail_type == ON_DEMAND.detail_type
    assert detail == {
        "group": GROUP,
        "stack": support.STACK,
        "activity-id": "3c1f6a2e-9b4d-4e7a-8c5f-6d2e1b0a9f8c",
        "status-message": "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity "
        "available that matches your request. Launching EC2 instance failed.",
        "availability-zone": "ap-northeast-1a",
        "instance-type": "t4g.small",
        "on-demand-per-hour": 0.0216,
        "spot-per-hour": 0.007,
        "extra-per-hour": 0.0146,
        "prices-as-of": AS_OF,
    }


def test_a_repeated_event_does_not_switch_twice(world: World) -> None:
    support.make_group(desired=1)
    event = no_spot_capacity()
    assert world.run(event)["action"] == "switched"
    again = world.run({**event, "id": str(uuid.uuid4())})  # redelivered
    assert again["action"] == "duplicate", again

    # The group's next failed attempt (a new activity) finds it on-demand already: nothing to switch, nothing to say.
    later = world.run(no_spot_capacity(ActivityId="a1b2c3d4-0000-4000-8000-000000000002"))
    assert later["action"] == "already-on-demand", later

    assert len(world.autoscaling.updates) == 1
    assert [detail_type for detail_type, _ in world.sent()] == [ON_DEMAND.detail_type]


def test_a_failed_update_is_retried(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    support.make_group(desired=1)
    event = no_spot_capacity()

    def throttled(**request: Any) -> Any:
        raise RuntimeError("Rate exceeded")

    with monkeypatch.context() as patch:
        patch.setattr(world.autoscaling, "update_auto_scaling_group", throttled)
        with pytest.raises(RuntimeError, match="Rate exceeded"):
            world.run(event)  # raised: Lambda retries the event
    assert world.on_demand_base() == 0 and world.sent() == []

    assert world.run(event)["action"] == "switched"  # the failed attempt left no idempotency record
    assert world.on_demand_base() == 1


# Real status messages of failed Auto Scaling launches, and where each was seen.
SPOT_CAPACITY_MESSAGES = [
    # EC2 Auto Scaling user guide, "Troubleshoot ... EC2 instance launch failures" (ts-as-capacity-2)
    "There is no Spot capacity available that matches your request. Launching EC2 instance failed.",
    # cortexlabs/cortex#1258 (an Auto Scaling group's activity)
    "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available that matches "
    "your request. Launching EC2 instance failed.",
    # eksctl's documentation (a node group's scaling activity)
    "Could not launch Spot Instances. UnfulfillableCapacity - There is no capacity available that matches your "
    "request. Launching EC2 instance failed.",
    # mludvig/aws-ethereum-miner#23, hortonworks/cloudbreak#11254
    "Could not launch Spot Instances. UnfulfillableCapacity - Unable to fulfill capacity due to your request "
    "configuration. Please adjust your request and try again. Launching EC2 instance failed.",
    # the user guide (ts-as-instancelaunchfailure-7): the Spot price above the maximum
    "Your Spot request price of 0.015 is lower than the minimum required Spot request fulfillment price of 0.0735. "
    "Launching EC2 instance failed.",
    # the user guide (ts-as-capacity-1), for one type in one zone
    "We currently do not have sufficient t4g.small capacity in the Availability Zone you requested "
    "(ap-northeast-1a). Our system will be working on provisioning additional capacity. You can currently get "
    "t4g.small capacity by not specifying an Availability Zone in your request or choosing ap-northeast-1c, "
    "ap-northeast-1d. Launching EC2 instance failed.",
]
ON_DEMAND_CAPACITY_MESSAGES = [
    # an EKS node group's health issue (punch platform notes)
    "Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient "
    "t3.xlarge capacity in the Availability Zone you requested (us-west-1c). Our system will be working on "
    "provisioning additional capacity. You can currently get t3.xlarge capacity by not specifying an Availability "
    "Zone in your request or choosing us-west-1a. Launching EC2 instance failed.",
]
NEEDS_A_PERSON_MESSAGES = [
    # the EC2 Auto Scaling API reference (DescribeScalingActivities example): a missing AMI
    "The image id 'ami-4edb0327' does not exist. Launching EC2 instance failed.",
    # cluster-api-provider-aws tests (an EKS node group): a missing AMI, through the fleet
    "Could not launch On-Demand Instances. InvalidAMIID.NotFound - The image id '[ami-02c7e84c65fcfecee]' does not "
    "exist. Launching EC2 instance failed.",
    # mludvig/aws-ethereum-miner#23: a type the zone does not offer
    "Could not launch Spot Instances. InvalidFleetConfiguration - Your requested instance type (p3.8xlarge) is not "
    "supported in your requested Availability Zone (us-east-2c). Launching EC2 instance failed.",
    # aws-deepracer-community/deepracer-on-the-spot#55: the account's Spot quota
    "Max spot instance count exceeded. Launching EC2 instance failed.",
    # a Terraform error classifier's test case: the vCPU quota (its text says "capacity")
    "Could not launch On-Demand Instances. VcpuLimitExceeded - You have requested more vCPU capacity than your "
    "current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to. Please "
    "visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit. Launching EC2 instance "
    "failed.",
    # an infrastructure README: an instance quota
    "You have requested more instances (2) than your current instance limit of 1 allows for the specified instance "
    "type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit. "
    "Launching EC2 instance failed.",
    # a Terraform module's comments: the service-linked role not yet propagated
    "Authentication Failure. Launching EC2 instance failed.",
    # the user guide's list of launch failures: a deleted security group
    "The security group sg-0123456789abcdef0 does not exist. Launching EC2 instance failed.",
    # an EKS troubleshooting note: the account's fleet quota
    "You've reached your quota for maximum Fleet Requests for this account. Launching EC2 instance failed.",
    "",
]


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        *((message, LaunchFailure.SPOT_CAPACITY) for message in SPOT_CAPACITY_MESSAGES),
        *((message, LaunchFailure.ON_DEMAND_CAPACITY) for message in ON_DEMAND_CAPACITY_MESSAGES),
        *((message, LaunchFailure.NEEDS_A_PERSON) for message in NEEDS_A_PERSON_MESSAGES),
    ],
)
def test_real_launch_failures_are_told_apart(message: str, failure: LaunchFailure) -> None:
    assert classify(message) is failure


@pytest.mark.parametrize("message", SPOT_CAPACITY_MESSAGES)
def test_every_kind_of_spot_capacity_failure_switches(world: World, message: str) -> None:
    support.make_group(desired=1)
    assert world.run(no_spot_capacity(StatusMessage=message))["action"] == "switched"
    assert world.on_demand_base() == 1


@pytest.mark.parametrize("message", NEEDS_A_PERSON_MESSAGES + ON_DEMAND_CAPACITY_MESSAGES)
def test_a_launch_that_failed_for_another_reason_never_switches(world: World, message: str) -> None:
    support.make_group(desired=1)
    result = world.run(no_spot_capacity(StatusMessage=message))
    assert result["action"] == "skipped" and "no switch" in result["reason"]
    assert world.autoscaling.updates == [] and world.sent() == []
    assert world.on_demand_base() == 0


def test_notify_tells_a_launch_that_needs_a_person_as_an_error_with_its_message() -> None:
    message = NEEDS_A_PERSON_MESSAGES[0]
    with support.notify_env(notify) as env:
        env.run(support.load_event(NO_SPOT_CAPACITY, detail={"StatusMessage": message}))
    [post] = env.slack.posts
    assert "FAILED: a person must fix it" in post["text"]
    assert message in post["text"]
    assert "not a lack of capacity" in post["text"] and "on-demand fallback does not apply" in post["text"]
    assert post["blocks"][1]["text"]["text"].startswith(":rotating_light:")


@pytest.mark.parametrize(("fallback", "said"), [("true", "switches the group to on-demand"), ("false", "is off")])
def test_notify_says_whether_no_spot_capacity_falls_back(
    monkeypatch: pytest.MonkeyPatch, fallback: str, said: str
) -> None:
    monkeypatch.setenv("ON_DEMAND_FALLBACK", fallback)
    with support.notify_env(notify) as env:
        env.run(support.load_event(NO_SPOT_CAPACITY))
    [post] = env.slack.posts
    assert "No Spot capacity in ap-northeast-1a" in post["text"] and said in post["text"]


# --- at zero: back to Spot ------------------------------------------------------------------------------------------


def test_at_zero_the_group_goes_back_to_spot(world: World) -> None:
    support.make_group(desired=0, on_demand_base=1)
    event = terminated()
    result = world.run(event)

    assert result["action"] == "back-to-spot", result
    [update] = world.autoscaling.updates
    assert update["MixedInstancesPolicy"] == {"InstancesDistribution": {**DISTRIBUTION, "OnDemandBaseCapacity": 0}}
    assert world.on_demand_base() == 0
    assert world.sent() == [
        (
            BACK_TO_SPOT.detail_type,
            {"group": GROUP, "stack": support.STACK, "activity-id": "7e6d5c4b-3a2f-4e1d-9c8b-7a6f5e4d3c2b"},
        )
    ]
    assert world.run({**event, "id": str(uuid.uuid4())})["action"] == "duplicate"  # redelivered
    assert len(world.autoscaling.updates) == 1 and len(world.sent()) == 1


@pytest.mark.parametrize(
    ("desired", "protected"),
    [(1, False), (0, True)],
    ids=["desired-1", "desired-0-but-an-instance-in-service"],
)
def test_a_serving_host_is_never_replaced(world: World, desired: int, protected: bool) -> None:
    """An instance terminated while the group wants one (health check, a person), or a group set to 0 whose instance
    still serves: changing the purchase options now could make Auto Scaling replace the host."""
    support.make_group(desired=1, on_demand_base=1, protected=protected)
    if desired == 0:
        support.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)
    assert [i["LifecycleState"] for i in world.group()["Instances"]] == ["InService"]

    result = world.run(terminated())

    assert result["action"] == "waiting", result
    assert "no serving host is replaced" in result["reason"]
    assert world.autoscaling.updates == [] and world.sent() == []
    assert world.on_demand_base() == 1


def test_a_group_on_spot_at_zero_changes_nothing(world: World) -> None:
    support.make_group(desired=0)
    assert world.run(terminated())["action"] == "already-spot"
    assert world.autoscaling.updates == [] and world.sent() == []


# --- what is not ours, or not an event ------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [no_spot_capacity, terminated], ids=["launch-failure", "terminated"])
def test_a_foreign_group_is_ignored(world: World, event: Any) -> None:
    support.make_group(desired=1, on_demand_base=0, name="spot-redis-production")
    support.make_group(desired=0, on_demand_base=1)
    result = world.run(event(AutoScalingGroupName="spot-redis-production"))
    assert result["action"] == "skipped" and "not this stack's" in result["reason"]
    assert world.autoscaling.updates == [] and world.sent() == []


def test_a_group_that_no_longer_exists_changes_nothing(world: World) -> None:
    assert world.run(no_spot_capacity())["action"] == "no-group"
    assert world.sent() == []


@pytest.mark.parametrize(
    "event",
    [
        None,
        "text",
        {"id": "x"},
        support.load_event(NO_SPOT_CAPACITY, detail={"ActivityId": None}),
        support.load_event(NO_SPOT_CAPACITY, detail={"AutoScalingGroupName": 7}),
        support.load_event(NO_SPOT_CAPACITY, **{"detail-type": "EC2 Instance Launch Successful"}),
    ],
    ids=["none", "text", "no-detail", "no-activity", "group-not-a-string", "unknown-detail-type"],
)
def test_malformed_events_are_logged_and_change_nothing(world: World, event: Any) -> None:
    with support.capture_logs(app.logger) as logs:
        assert world.run(event)["action"] == "ignored"
    errors = [record for record in support.log_records(logs) if record["level"] == "ERROR"]
    assert len(errors) == 1
    assert world.autoscaling.updates == [] and world.sent() == []


# --- the price table ------------------------------------------------------------------------------------------------


def test_the_price_table_prices_every_type_of_the_example_stack() -> None:
    from infra.config import DEFAULT_INSTANCE_TYPES
    from tests.unit.pulumi_harness import example_config

    config = example_config()
    region, types = config["aws:region"], config["spot-redis:instanceTypes"]
    assert types == TYPES
    assert [t for t in types if hourly_price(region, t) is None] == []
    priced = [t for types in DEFAULT_INSTANCE_TYPES.values() for t in types if hourly_price(region, t) is not None]
    assert len(priced) >= 8, priced


def test_a_type_the_table_lacks_is_named_and_the_first_type_still_priced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    detail = app.cost_detail(["t4g.small", "c6gn.medium"])
    assert detail["types-without-price"] == ["c6gn.medium"]
    assert (detail["instance-type"], detail["on-demand-per-hour"], detail["extra-per-hour"]) == (
        "t4g.small",
        0.0216,
        0.0146,
    )
    unpriced_first = app.cost_detail(["c6gn.medium", "t4g.small"])
    assert unpriced_first["types-without-price"] == ["c6gn.medium"]
    assert "on-demand-per-hour" not in unpriced_first


def test_the_price_table_says_spot_is_cheaper() -> None:
    for region, prices in PRICES.items():
        for instance_type, price in prices.items():
            assert 0 < price.spot < price.on_demand, (region, instance_type)
            assert price.extra == round(price.on_demand - price.spot, 4)
    assert hourly_price("eu-west-1", "t4g.small") is None
