"""`spot-redis status`: the host, the data volume and its newest snapshot, the schedule, the on-demand fallback,
the failed events waiting, and this month's cost so far."""

from __future__ import annotations

import argparse
import calendar
import copy
import dataclasses
import datetime
from typing import Any
from zoneinfo import ZoneInfo

from spot_redis.cli import aws
from spot_redis.cli.schedule import Recurrence, up_hours
from spot_redis.cost.model import estimate
from spot_redis.cost.prices import FilePrices
from spot_redis.cost.stack_file import stack_config

START_ACTION, STOP_ACTION = "working-hours-start", "working-hours-stop"  # infra/compute.py's names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="the host, the data volume, snapshots, the schedule, the fallback, failed events, the month's cost",
        description="What the stack is doing now. AWS terms: DescribeAutoScalingGroups, DescribeInstances, "
        "DescribeSpotPriceHistory, DescribeVolumes, DescribeSnapshots, DescribeScheduledActions, SQS "
        "GetQueueAttributes.",
    )
    parser.set_defaults(func=run)


def run(invocation: Any) -> Any:
    from spot_redis.cli.main import Result

    stack = invocation.stack
    now = invocation.tools.now()
    group = aws.group(stack)
    data = {
        "stack": stack.name,
        "region": stack.region,
        "group": stack.group,
        "desired-capacity": group.get("DesiredCapacity"),
        "host": host_status(stack, group, now),
        "volume": volume_status(stack, now),
        "schedule": schedule_status(stack, now),
        "on-demand-fallback": fallback_status(group),
        "failed-events": failed_events(stack),
    }
    data["month-to-date"] = month_estimate(stack, data, now)
    return Result(data=data, lines=human(data))


def host_status(stack: Any, group: dict[str, Any], now: datetime.datetime) -> dict[str, Any] | None:
    instance = aws.host(stack, group)
    if instance is None:
        return None
    zone = instance.get("Placement", {}).get("AvailabilityZone")
    lifecycle = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
    return {
        "instance-id": instance["InstanceId"],
        "instance-type": instance["InstanceType"],
        "state": instance["State"]["Name"],
        "lifecycle": lifecycle,
        "availability-zone": zone,
        "spot-price-per-hour": spot_price(stack, instance["InstanceType"], zone, now),
        "up-since": instance["LaunchTime"],
        "up-for": aws.age(instance["LaunchTime"], now),
    }


def spot_price(stack: Any, instance_type: str, zone: str | None, now: datetime.datetime) -> float | None:
    request: dict[str, Any] = {
        "InstanceTypes": [instance_type],
        "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": now,
        "MaxResults": 10,
    }
    if zone:
        request["AvailabilityZone"] = zone
    history = stack.client("ec2").describe_spot_price_history(**request).get("SpotPriceHistory", [])
    history = [item for item in history if not zone or item.get("AvailabilityZone") == zone]
    if not history:
        return None
    return float(max(history, key=lambda item: item["Timestamp"])["SpotPrice"])


def volume_status(stack: Any, now: datetime.datetime) -> dict[str, Any]:
    volume = aws.volume(stack)
    attached = [a["InstanceId"] for a in volume.get("Attachments", []) if a.get("State") in ("attaching", "attached")]
    snapshots = stack.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [stack.volume_id]}]
    )["Snapshots"]
    newest = max(snapshots, key=lambda snapshot: snapshot["StartTime"]) if snapshots else None
    return {
        "volume-id": stack.volume_id,
        "state": volume["State"],
        "attached-to": attached[0] if attached else None,
        "size-gib": volume.get("Size"),
        "newest-snapshot": None
        if newest is None
        else {
            "snapshot-id": newest["SnapshotId"],
            "state": newest.get("State"),
            "started": newest["StartTime"],
            "age": aws.age(newest["StartTime"], now),
        },
    }


def recurrences(stack: Any) -> tuple[Recurrence, Recurrence] | None:
    """The group's start and stop actions, or None when it has none (always on)."""
    actions = stack.client("autoscaling").describe_scheduled_actions(AutoScalingGroupName=stack.group)
    by_name = {action["ScheduledActionName"]: action for action in actions.get("ScheduledUpdateGroupActions", [])}
    if START_ACTION not in by_name or STOP_ACTION not in by_name:
        return None
    start, stop = by_name[START_ACTION], by_name[STOP_ACTION]
    return (
        Recurrence.parse(start["Recurrence"], start.get("TimeZone")),
        Recurrence.parse(stop["Recurrence"], stop.get("TimeZone")),
    )


def schedule_status(stack: Any, now: datetime.datetime) -> dict[str, Any]:
    found = recurrences(stack)
    if found is None:
        return {"always-on": True}
    start, stop = found
    zone = ZoneInfo(start.time_zone)
    next_start, next_stop = start.next_after(now), stop.next_after(now)
    return {
        "always-on": False,
        "time-zone": start.time_zone,
        "next-start": next_start.astimezone(zone) if next_start else None,
        "next-stop": next_stop.astimezone(zone) if next_stop else None,
    }


def fallback_status(group: dict[str, Any]) -> dict[str, Any]:
    distribution = group.get("MixedInstancesPolicy", {}).get("InstancesDistribution", {})
    base = int(distribution.get("OnDemandBaseCapacity", 0) or 0)
    return {"on-demand-base-capacity": base, "active": base > 0}


def failed_events(stack: Any) -> int | None:
    url = stack.outputs.get("failedEventsQueueUrl")
    if not url:
        return None
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def month_estimate(stack: Any, data: dict[str, Any], now: datetime.datetime) -> dict[str, Any] | None:
    """This month so far: the host's hours (from the schedule, or every hour when always on) priced by the cost
    model (spot_redis/cost) with the stack's configuration, the current Spot price for the host's type, and the
    monthly lines for the share of the month gone. Without the stack file, compute only."""
    host = data["host"]
    live_price = host.get("spot-price-per-hour") if host else None
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    found = recurrences(stack)
    hours = (now - month_start).total_seconds() / 3600 if found is None else up_hours(*found, month_start, now)
    if not stack.config:
        if not live_price:
            return None
        return {
            "scope": "compute only (the host's hours at the current Spot price; no Pulumi.<stack>.yaml to price "
            "the rest)",
            "hours": round(hours, 1),
            "usd": round(hours * live_price, 2),
        }
    config = stack_config(stack.config, stack.name)
    prices = FilePrices()
    region_prices = copy.deepcopy(prices.region(config.region))
    if host:
        running = host["instance-type"]
        config = dataclasses.replace(
            config, instance_types=(running, *(t for t in config.instance_types if t != running))
        )
        if live_price:
            region_prices.setdefault("ec2SpotHour", {})[running] = {"usd": live_price, "date": now.date().isoformat()}
    result = estimate(config, region_prices, prices.specs(), hours, "so far")
    days = calendar.monthrange(now.year, now.month)[1]
    share = (now - month_start).total_seconds() / (days * 86400)
    spot = "the current Spot price" if host and live_price else "the price file's Spot price"
    return {
        "scope": f"every line of `spot-redis cost`: the host's hours at {spot}, the monthly lines for the "
        f"{share:.0%} of the month gone",
        "hours": round(hours, 1),
        "usd": round(result.cost_so_far(share), 2),
    }


def _when(moment: datetime.datetime | None) -> str:
    return moment.strftime("%a %Y-%m-%d %H:%M %Z") if moment else "unknown"


def human(data: dict[str, Any]) -> list[str]:
    lines = [f"stack {data['stack']} ({data['region'] or 'default region'}), group {data['group']}"]
    host = data["host"]
    if host is None:
        lines.append(f"host:      none (desired capacity {data['desired-capacity']})")
    else:
        price = host["spot-price-per-hour"]
        lines.append(
            f"host:      {host['instance-id']} {host['instance-type']} {host['lifecycle']} in "
            f"{host['availability-zone']}, {host['state']}, up {host['up-for']} "
            f"(since {host['up-since']:%Y-%m-%d %H:%M} UTC)"
        )
        lines.append(
            f"spot price: {f'${price:.4f}/h' if price is not None else 'unknown'} for {host['instance-type']} there"
        )
    volume = data["volume"]
    lines.append(
        f"volume:    {volume['volume-id']} {volume['state']}"
        + (f", attached to {volume['attached-to']}" if volume["attached-to"] else ", not attached")
    )
    snapshot = volume["newest-snapshot"]
    lines.append(
        "snapshot:  none yet"
        if snapshot is None
        else f"snapshot:  {snapshot['snapshot-id']} ({snapshot['state']}), {snapshot['age']} old"
    )
    schedule = data["schedule"]
    if schedule["always-on"]:
        lines.append("schedule:  always on")
    else:
        lines.append(f"schedule:  next start {_when(schedule['next-start'])}, next stop {_when(schedule['next-stop'])}")
    fallback = data["on-demand-fallback"]
    lines.append(
        f"fallback:  on-demand (on-demand base capacity {fallback['on-demand-base-capacity']}: Spot had no capacity)"
        if fallback["active"]
        else "fallback:  off (100% Spot)"
    )
    failed = data["failed-events"]
    lines.append(f"failed events waiting: {'unknown' if failed is None else failed}")
    estimate = data["month-to-date"]
    lines.append(
        "month to date: unknown (no host, or no Spot price)"
        if estimate is None
        else f"month to date: ${estimate['usd']:.2f} for {estimate['hours']} h, {estimate['scope']}"
    )
    return lines
