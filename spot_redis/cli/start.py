"""`spot-redis start`: the host now, outside the working hours (the schedule's next action applies as usual)."""

from __future__ import annotations

import argparse
from typing import Any

from spot_redis.cli import aws
from spot_redis.cli.status import schedule_status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "start",
        help="start the host now (desired capacity 1)",
        description="Start the host now. AWS terms: SetDesiredCapacity 1 on the stack's Auto Scaling group. "
        "The schedule takes over again at its next action.",
    )
    parser.set_defaults(func=run)


def run(invocation: Any) -> Any:
    return set_capacity(invocation, 1)


def set_capacity(invocation: Any, desired: int) -> Any:
    from spot_redis.cli.main import Result

    stack = invocation.stack
    before = aws.set_desired(stack, desired)
    schedule = schedule_status(stack, invocation.tools.now())
    verb = "start" if desired else "stop"
    lines = [
        f"{stack.group}: desired capacity {before.get('DesiredCapacity')} -> {desired}"
        + (" (it already was)" if before.get("DesiredCapacity") == desired else "")
    ]
    if schedule["always-on"]:
        lines.append("the stack is always on: the group stays at this capacity until you change it")
    else:
        action = schedule["next-stop"] if desired else schedule["next-start"]
        when = f"{action:%a %Y-%m-%d %H:%M %Z}" if action else "its next action"
        lines.append(f"the schedule takes over again at its next {'stop' if desired else 'start'}: {when}")
    data = {
        "group": stack.group,
        "desired-capacity": desired,
        "previous": before.get("DesiredCapacity"),
        "action": verb,
    }
    data["schedule"] = schedule
    return Result(data=data, lines=lines)
