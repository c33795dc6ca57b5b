"""`spot-redis warmup`: the warm-up batch now, through the same path as the automatic one.

It puts a WARMUP_REQUESTED event on EventBridge; the stack's warmup rule hands it to the warmup Lambda, which starts
the task once per request, announces it (WARMUP_STARTED) and so tells Slack, as it does for a host that lost its data.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from spot_redis.cli import aws
from spot_redis.cli.context import CliError
from spot_redis.events import WARMUP_REQUESTED, entry, iso_time

POLL_SECONDS = 10.0
FIND_TASK_SECONDS = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "warmup",
        help="start the cache warm-up batch now (as after a lost dataset)",
        description="AWS terms: EventBridge PutEvents of a 'Redis Warm-up Requested' event; the stack's rule hands "
        "it to the warmup Lambda, which runs the ECS task once, announces it and tells Slack. With --wait, ECS "
        "ListTasks/DescribeTasks until the task stops.",
    )
    parser.add_argument("--reason", help="said in Slack")
    parser.add_argument("--wait", action="store_true", help="follow the task to its end and print its exit code")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits (default 3600)")
    parser.set_defaults(func=run)


def request_entry(stack: str, instance_id: str, requested_by: str, now: Any, reason: str | None) -> dict[str, Any]:
    detail = {
        "instance-id": instance_id,
        "stack": stack,
        "request-id": str(uuid.uuid4()),
        "requested-by": requested_by,
        "requested-at": iso_time(now),
    }
    if reason:
        detail["reason"] = reason
    return entry(WARMUP_REQUESTED, detail)


def run(invocation: Any) -> Any:
    from spot_redis.cli.main import Result

    args, stack, tools = invocation.args, invocation.stack, invocation.tools
    instance = aws.running_host(stack)
    instance_id = instance["InstanceId"]
    caller = stack.client("sts").get_caller_identity()["Arn"]
    event = request_entry(stack.name, instance_id, caller, tools.now(), args.reason)
    cluster = str(stack.output("clusterName")) if args.wait else ""
    known = host_tasks(stack, cluster, instance_id) if args.wait else set()  # before the request: the new one is not
    answer = stack.client("events").put_events(Entries=[event])
    if answer.get("FailedEntryCount"):
        failed = answer["Entries"][0]
        raise CliError(f"EventBridge refused the request: {failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
    data: dict[str, Any] = {"instance-id": instance_id, "event": event}
    lines = [
        f"warm-up requested for {instance_id} ({event['DetailType']}, event {answer['Entries'][0].get('EventId')}); "
        "the warmup function starts the task and tells Slack"
    ]
    if not args.wait:
        return Result(data=data, lines=lines)
    task_arn = find_task(stack, cluster, instance_id, known, tools)
    task = follow_task(stack, cluster, task_arn, args.timeout, tools)
    code = task_exit_code(task)
    data.update({"task-arn": task_arn, "exit-code": code, "stopped-reason": task.get("stoppedReason")})
    lines.append(f"task {task_arn} stopped: exit code {code} ({task.get('stoppedReason') or 'no reason given'})")
    return Result(data=data, lines=lines, code=0 if code == 0 else 1)


def host_tasks(stack: Any, cluster: str, instance_id: str) -> set[str]:
    """The tasks the warmup Lambda started for this host (startedBy is the instance id), running or stopped."""
    ecs = stack.client("ecs")
    arns: set[str] = set()
    for status in ("RUNNING", "STOPPED"):
        answer = ecs.list_tasks(cluster=cluster, startedBy=instance_id, desiredStatus=status)
        arns |= set(answer.get("taskArns", []))
    return arns


def find_task(stack: Any, cluster: str, instance_id: str, known: set[str], tools: Any) -> str:
    """The task started for this host since the request (one not in ``known``)."""
    started = tools.monotonic()
    while tools.monotonic() - started < FIND_TASK_SECONDS:
        arns = host_tasks(stack, cluster, instance_id) - known
        if arns:
            return sorted(arns)[-1]
        tools.sleep(POLL_SECONDS)
    raise CliError(
        f"no warm-up task started for {instance_id} within {FIND_TASK_SECONDS:.0f} s: see the warmup function's logs"
    )


def follow_task(stack: Any, cluster: str, task_arn: str, timeout: float, tools: Any) -> dict[str, Any]:
    ecs = stack.client("ecs")
    started = tools.monotonic()
    while True:
        tasks = ecs.describe_tasks(cluster=cluster, tasks=[task_arn]).get("tasks", [])
        if tasks and tasks[0].get("lastStatus") == "STOPPED":
            return tasks[0]
        if tools.monotonic() - started >= timeout:
            raise CliError(f"task {task_arn} still running after {timeout:.0f} s")
        tools.sleep(POLL_SECONDS)


def task_exit_code(task: dict[str, Any]) -> int | None:
    codes = [container.get("exitCode") for container in task.get("containers", [])]
    codes = [code for code in codes if code is not None]
    return max(codes) if codes else None
