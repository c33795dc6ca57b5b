"""`spot-redis stop`: stop the host now, and wait until its data volume is detached (`available`).

The host drains itself as at a scheduled stop (its lifecycle hook: save, stop Redis, unmount, detach); this command
only sets the capacity and watches the volume.
"""

from __future__ import annotations

import argparse
from typing import Any

from spot_redis.cli import aws
from spot_redis.cli.context import CliError
from spot_redis.cli.start import set_capacity

POLL_SECONDS = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stop",
        help="stop the host now (desired capacity 0) and wait for the data volume to be detached",
        description="Stop the host now. AWS terms: SetDesiredCapacity 0 on the stack's Auto Scaling group, then "
        "DescribeVolumes until the data volume is `available`. The host drains as at a scheduled stop; the "
        "schedule takes over again at its next action.",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the volume (default 600)")
    parser.add_argument("--no-wait", action="store_true", help="set the capacity and return")
    parser.set_defaults(func=run)


def run(invocation: Any) -> Any:
    result = set_capacity(invocation, 0)
    if invocation.args.no_wait:
        return result
    stack = invocation.stack
    waited = wait_available(stack, invocation.args.timeout, invocation.tools)
    result.data["volume-state"] = "available"
    result.data["waited-seconds"] = round(waited, 1)
    result.lines.append(f"data volume {stack.volume_id} is available (detached) after {waited:.0f} s: stopped cleanly")
    return result


def wait_available(stack: Any, timeout: float, tools: Any) -> float:
    """Seconds until the data volume is `available`; CliError after `timeout`."""
    started = tools.monotonic()
    while True:
        state = aws.volume(stack)["State"]
        waited = tools.monotonic() - started
        if state == "available":
            return waited
        if waited >= timeout:
            raise CliError(
                f"the data volume {stack.volume_id} is still {state} after {timeout:.0f} s: the host may still be "
                "draining (see `spot-redis status`)"
            )
        tools.sleep(min(POLL_SECONDS, max(0.0, timeout - waited)))
