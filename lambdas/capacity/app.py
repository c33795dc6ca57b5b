"""capacity: the on-demand fallback. No Spot capacity switches the group to on-demand; at zero it goes back to Spot.

Events (EventBridge, this stack's Auto Scaling group only; infra/alerting.py's rules route nothing else here):

- "EC2 Instance Launch Unsuccessful" whose StatusMessage says there is no Spot capacity (common.launch_failures, the
  one list of such failures): the group's mixed instances policy gets an on-demand base capacity of 1, so that its
  next launch attempt starts an on-demand instance of the same types; emits ON_DEMAND with the failure and what
  on-demand costs more than Spot per hour (common.prices' table). Any other launch failure changes nothing: it needs
  a person, and notify says so.
- "EC2 Instance Terminate Successful": when the group is at zero (desired capacity 0 and no instance but those
  terminating: the scheduled stop, or a stop by hand) and on-demand, its on-demand base goes back to 0 and it emits
  BACK_TO_SPOT. While a host serves (desired 1, or an instance in service) nothing changes: changing the purchase
  options of a group that has an instance may make Auto Scaling replace it, and this host holds the data volume.

Said once: idempotent on the event's ActivityId (a redelivery changes nothing twice), and on the group's state (a
group already on-demand is not switched again, one already on Spot is not returned). The update sends the whole
InstancesDistribution read from the group, changed in its on-demand base only, and no launch template: AWS keeps
the parts of a mixed instances policy an update leaves out, and a launch template in the request would also need
ec2:RunInstances and iam:PassRole.

Settings (infra/alerting.py): STACK_NAME, IDEMPOTENCY_TABLE, ASG_NAME; AWS_REGION (set by Lambda) picks the price
table's region. Settings, clients, clock, event parsing and idempotency are lambdas/common's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from common import idempotency
from common.events import EventRecord, MalformedEventError, detail_str, event_id, parse_record
from common.launch_failures import LaunchFailure, classify
from common.prices import AS_OF, hourly_price
from common.runtime import clients, require_env

from spot_redis.events import BACK_TO_SPOT, ON_DEMAND, EventKind, entry

AUTOSCALING_SOURCE = "aws.autoscaling"
LAUNCH_UNSUCCESSFUL = "EC2 Instance Launch Unsuccessful"
TERMINATE_SUCCESSFUL = "EC2 Instance Terminate Successful"
# Lifecycle states of an instance on its way out of the group: it serves nothing any more.
LEAVING_STATES = ("Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated")
# EventBridge retries for an hour and Lambda's asynchronous queue for another: a day outlasts every redelivery.
ACTIVITY_MEMORY_SECONDS = 24 * 3600

logger = Logger(service="spot-redis-capacity")


def handler(event: Any, context: Any) -> dict[str, Any]:
    logger.clear_state()
    logger.append_keys(event_id=event_id(event))
    group = require_env("ASG_NAME")
    try:
        record = parse_record(event)
        route = ROUTES.get((record.source, record.detail_type))
        if route is None:
            raise MalformedEventError(f"unexpected event: source {record.source!r}, detail-type {record.detail_type!r}")
        event_group = detail_str(record, "AutoScalingGroupName")
        activity = detail_str(record, "ActivityId")
    except MalformedEventError as error:
        logger.error(f"event {event_id(event)} ignored: {error}")
        return {"action": "ignored", "reason": str(error)}
    logger.append_keys(group=event_group, activity_id=activity)
    if event_group != group:
        return _skip(f"group {event_group!r} is not this stack's ({group!r})")
    return route(record, group, activity, context)


# --- no Spot capacity: on-demand -----------------------------------------------------------------------------------


def on_launch_failure(record: EventRecord, group: str, activity: str, context: Any) -> dict[str, Any]:
    message = record.detail.get("StatusMessage") or ""
    failure = classify(message)
    if failure is not LaunchFailure.SPOT_CAPACITY:
        return _skip(f"the launch failed for another reason than Spot capacity ({failure}): no switch; {message}")
    outcome = idempotency.run_once(
        switch_to_on_demand,
        key=idempotency.subject_key("on-demand", activity),
        key_prefix="spot-redis-capacity-on-demand",
        lambda_context=context,
        window_seconds=ACTIVITY_MEMORY_SECONDS,
        group=group,
        activity=activity,
        message=message,
        zone=_zone(record),
    )
    return _said_once(outcome, activity)


def switch_to_on_demand(group: str, activity: str, message: str, zone: str | None) -> dict[str, Any]:
    """On-demand base capacity 1, then ON_DEMAND. Runs once per launch activity."""
    current = describe_group(group)
    if current is None:
        return _skip(f"group {group} does not exist (any more)", action="no-group")
    overrides = current["MixedInstancesPolicy"]["LaunchTemplate"].get("Overrides", [])
    instance_types = [override["InstanceType"] for override in overrides if override.get("InstanceType")]
    if _on_demand_base(current) > 0:
        return _skip(f"group {group} launches on-demand already", action="already-on-demand")
    set_on_demand_base(current, 1)
    logger.info(f"group {group} switched to on-demand after a Spot launch without capacity: {message}")
    detail = {"group": group, "stack": require_env("STACK_NAME"), "activity-id": activity, "status-message": message}
    if zone:
        detail["availability-zone"] = zone
    put_event(ON_DEMAND, {**detail, **cost_detail(instance_types)})
    return {"action": "switched", "reason": f"group {group} launches on-demand from now on"}


def cost_detail(instance_types: list[str]) -> dict[str, Any]:
    """What the first type (the one an on-demand launch takes first: the on-demand allocation strategy is
    "prioritized", in the order of the overrides) costs per hour, on-demand and on Spot, from the price table."""
    if not instance_types:
        return {}
    region = require_env("AWS_REGION")
    first = instance_types[0]
    detail: dict[str, Any] = {"instance-type": first, "prices-as-of": AS_OF}
    unknown = [instance_type for instance_type in instance_types if hourly_price(region, instance_type) is None]
    if unknown:
        detail["types-without-price"] = unknown
    price = hourly_price(region, first)
    if price is not None:
        detail |= {"on-demand-per-hour": price.on_demand, "spot-per-hour": price.spot, "extra-per-hour": price.extra}
    return detail


# --- at zero: back to Spot ------------------------------------------------------------------------------------------


def on_terminated(record: EventRecord, group: str, activity: str, context: Any) -> dict[str, Any]:
    outcome = idempotency.run_once(
        return_to_spot,
        key=idempotency.subject_key("back-to-spot", activity),
        key_prefix="spot-redis-capacity-back-to-spot",
        lambda_context=context,
        window_seconds=ACTIVITY_MEMORY_SECONDS,
        group=group,
        activity=activity,
    )
    return _said_once(outcome, activity)


def return_to_spot(group: str, activity: str) -> dict[str, Any]:
    """On-demand base capacity 0, then BACK_TO_SPOT, only when the group is at zero. Runs once per termination."""
    current = describe_group(group)
    if current is None:
        return _skip(f"group {group} does not exist (any more)", action="no-group")
    if _on_demand_base(current) == 0:
        return _skip(f"group {group} is on Spot already", action="already-spot")
    serving = [i["InstanceId"] for i in current.get("Instances", []) if i.get("LifecycleState") not in LEAVING_STATES]
    if current["DesiredCapacity"] > 0 or serving:
        return _skip(
            f"group {group} is not at zero (desired {current['DesiredCapacity']}, instances {serving}): it stays "
            "on-demand until the next stop, so that no serving host is replaced",
            action="waiting",
        )
    set_on_demand_base(current, 0)
    logger.info(f"group {group} is at zero: back to Spot")
    put_event(BACK_TO_SPOT, {"group": group, "stack": require_env("STACK_NAME"), "activity-id": activity})
    return {"action": "back-to-spot", "reason": f"group {group} launches Spot again"}


ROUTES = {
    (AUTOSCALING_SOURCE, LAUNCH_UNSUCCESSFUL): on_launch_failure,
    (AUTOSCALING_SOURCE, TERMINATE_SUCCESSFUL): on_terminated,
}


# --- the group ------------------------------------------------------------------------------------------------------


def describe_group(group: str) -> dict[str, Any] | None:
    """The group as DescribeAutoScalingGroups shows it; None when it does not exist."""
    groups = clients.get("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    found = groups.get("AutoScalingGroups", [])
    return found[0] if found else None


def _on_demand_base(group: dict[str, Any]) -> int:
    return int(group["MixedInstancesPolicy"].get("InstancesDistribution", {}).get("OnDemandBaseCapacity", 0))


def set_on_demand_base(group: dict[str, Any], base: int) -> None:
    """Change the on-demand base capacity and nothing else: the whole distribution as the group has it, no launch
    template (see the module's docstring)."""
    distribution = {**group["MixedInstancesPolicy"].get("InstancesDistribution", {}), "OnDemandBaseCapacity": base}
    clients.get("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=group["AutoScalingGroupName"],
        MixedInstancesPolicy={"InstancesDistribution": distribution},
    )


# --- helpers --------------------------------------------------------------------------------------------------------


def put_event(kind: EventKind, detail: dict[str, Any]) -> None:
    """Put one event of ``kind``. The group has changed already: a failure to announce it is logged, never raised
    (a retry would find the group changed, and say nothing either; notify's launch-failure message already says that
    the group switches)."""
    try:
        response = clients.get("events").put_events(Entries=[entry(kind, detail)])
        problem = f"EventBridge refused {kind.detail_type}: {response.get('Entries')}"
        if not response.get("FailedEntryCount", 0):
            return
    except ClientError as error:
        problem = f"could not send {kind.detail_type}: {error}"
    logger.error(problem, detail=detail)


def _zone(record: EventRecord) -> str | None:
    details = record.detail.get("Details")
    zone = details.get("Availability Zone") if isinstance(details, dict) else None
    return zone if isinstance(zone, str) and zone else None


def _said_once(outcome: idempotency.Outcome, activity: str) -> dict[str, Any]:
    if outcome.in_progress:
        return _skip(f"another invocation handles activity {activity} right now", action="in-progress")
    if not outcome.first:
        return _skip(f"activity {activity} was handled already: {outcome.result['action']}", action="duplicate")
    return outcome.result


def _skip(reason: str, action: str = "skipped") -> dict[str, Any]:
    logger.info(reason)
    return {"action": action, "reason": reason}
