"""Warm-up Lambda: re-run the cache warm-up batch when a Spot Redis host came up without its data.

Events (EventBridge; the custom events' source, detail-types and keys are spot_redis/events.py's, packaged into the
zip):
- HOST_READY ("Redis Host Ready") whose `dataset` is one of WARMUP_DATASETS (`empty`: the data is lost): for an
  instance of this stack, inside WORK_HOURS, run the warm-up task once per host boot (Fargate Spot, the given subnets
  and security groups, a public address when ASSIGN_PUBLIC_IP is ENABLED), then emit WARMUP_STARTED with the
  `trigger` and the `dataset`. `complete`
  (nothing lost) and `crash` (at most the last second of writes lost) start nothing: the data is there.
- WARMUP_REQUESTED ("Redis Warm-up Requested", an operator's `spot-redis warmup`): for an instance of this stack, run
  the task once per request id, whatever the dataset and the hour, and emit WARMUP_STARTED as above.
- `ECS Task State Change` (source aws.ecs) of a stopped warm-up task in this stack's cluster: emit WARMUP_FINISHED
  with the result, once per task.

An event this function cannot use is logged as an error with its id and the function returns normally: a retry would
not help. AWS errors (DynamoDB, ECS, EventBridge unreachable) do raise, so that Lambda retries the event.

Settings, clients, clock, event parsing, ownership and idempotency are lambdas/common's (common.runtime's `clients`
and `clock` are what tests replace). Packaged with lambdas/common as the `common` package; the handler is
`app.handler`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from common import idempotency
from common.events import (
    EventRecord,
    MalformedEventError,
    check_contract,
    contract_keys,
    detail_dataset,
    detail_str,
    event_id,
    parse_record,
)
from common.ownership import STACK_TAG, is_ours
from common.runtime import SettingError, clients, clock, env_choice, optional_env, require_env, require_env_list
from warmup_hours import WorkHours, WorkHoursError, parse_work_hours

from spot_redis.events import (
    HOST_READY,
    SOURCE,
    WARMUP_DATASETS,
    WARMUP_FINISHED,
    WARMUP_REQUESTED,
    WARMUP_STARTED,
    Dataset,
    EventKind,
    entry,
)

ECS_SOURCE = "aws.ecs"
ECS_TASK_STATE_CHANGE = "ECS Task State Change"
# The detail keys this function reads from HOST_READY, checked against the contract when the module loads.
INSTANCE_ID_KEY, STACK_KEY, DATASET_KEY = contract_keys(HOST_READY, "instance-id", "stack", "dataset")
(REQUEST_ID_KEY,) = contract_keys(WARMUP_REQUESTED, "request-id")
# One host boot is one instance id (never reused): remember it well past any redelivery of its events.
BOOT_MEMORY_SECONDS = 2 * 24 * 3600
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
# Fargate's awsvpcConfiguration.assignPublicIp: ENABLED in a public subnet without NAT (the task pulls its image and
# reads its secret over the internet), DISABLED in a private subnet with NAT or VPC endpoints.
PUBLIC_IP_CHOICES = ("ENABLED", "DISABLED")

logger = Logger(service="spot-redis-warmup")


@dataclass(frozen=True)
class Settings:
    stack: str
    cluster_arn: str
    task_definition_arn: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: str
    work_hours: WorkHours | None  # None: always on

    @classmethod
    def from_environment(cls) -> Settings:
        try:
            hours = parse_work_hours(optional_env("WORK_HOURS"))
        except WorkHoursError as error:
            raise SettingError(str(error)) from None
        return cls(
            stack=require_env("STACK_NAME"),
            cluster_arn=require_env("CLUSTER_ARN"),
            task_definition_arn=require_env("TASK_DEFINITION_ARN"),
            subnets=require_env_list("SUBNET_IDS"),
            security_groups=require_env_list("SECURITY_GROUP_IDS"),
            assign_public_ip=env_choice("ASSIGN_PUBLIC_IP", PUBLIC_IP_CHOICES, default="ENABLED"),
            work_hours=hours,
        )

    @property
    def task_family(self) -> str:
        """`arn:...:task-definition/FAMILY:REV` (or a bare `FAMILY[:REV]`) -> FAMILY."""
        return self.task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0]


def handler(event: Any, context: Any) -> dict[str, Any]:
    logger.clear_state()
    logger.append_keys(event_id=event_id(event))
    settings = Settings.from_environment()
    try:
        record = parse_record(event)
        logger.append_keys(detail_type=record.detail_type, source=record.source)
        route = ROUTES.get((record.source, record.detail_type))
        if route is None:
            raise MalformedEventError(f"unexpected event: source {record.source!r}, detail-type {record.detail_type!r}")
        check_contract(record)
        return route(record, settings, context)
    except MalformedEventError as error:
        logger.error(f"event {event_id(event)} ignored: {error}")
        return {"action": "ignored", "reason": str(error)}


# --- the host is ready: start the warm-up task if its data is lost ---------------------------------------------------


def on_host_ready(record: EventRecord, settings: Settings, context: Any) -> dict[str, Any]:
    instance_id = _instance_id(detail_str(record, INSTANCE_ID_KEY), f"detail.{INSTANCE_ID_KEY}")
    stack = detail_str(record, STACK_KEY)
    dataset = detail_dataset(record, DATASET_KEY)
    logger.append_keys(instance_id=instance_id, dataset=str(dataset))
    if stack != settings.stack:
        return _skip(f"event is about stack {stack!r}, this function serves {settings.stack!r}")
    if dataset not in WARMUP_DATASETS:
        lost = "nothing was lost" if dataset is Dataset.COMPLETE else "at most the last second of writes was lost"
        return _skip(f"{instance_id} came up with dataset {dataset} ({lost}): no warm-up")
    if not is_ours(clients.get("ec2"), instance_id, settings.stack):
        return _skip(f"instance {instance_id} is not tagged {STACK_TAG}={settings.stack}")
    hours = settings.work_hours
    now = clock.now()
    if hours is not None and not hours.contains(now):
        return _skip(f"warm-up not started for {instance_id}: {hours.why_outside(now)}")

    boot = {"instance-id": instance_id, "stack": stack, "trigger": record.detail_type, "dataset": str(dataset)}
    return _start_once(boot, idempotency.subject_key("warmup", instance_id), "this boot of", settings, context)


def on_warmup_requested(record: EventRecord, settings: Settings, context: Any) -> dict[str, Any]:
    """An operator's `spot-redis warmup`: start the batch for the running host whatever its dataset and the hour (the
    operator asked now), once per request id; announced with WARMUP_STARTED as the automatic start is."""
    instance_id = _instance_id(detail_str(record, INSTANCE_ID_KEY), f"detail.{INSTANCE_ID_KEY}")
    stack = detail_str(record, STACK_KEY)
    request_id = detail_str(record, REQUEST_ID_KEY)
    logger.append_keys(instance_id=instance_id, request_id=request_id)
    if stack != settings.stack:
        return _skip(f"event is about stack {stack!r}, this function serves {settings.stack!r}")
    if not is_ours(clients.get("ec2"), instance_id, settings.stack):
        return _skip(f"instance {instance_id} is not tagged {STACK_TAG}={settings.stack}")
    boot = {"instance-id": instance_id, "stack": stack, "trigger": record.detail_type}
    key = idempotency.subject_key("warmup-request", request_id)
    return _start_once(boot, key, f"request {request_id} for", settings, context)


def _start_once(boot: dict[str, Any], key: str, what: str, settings: Settings, context: Any) -> dict[str, Any]:
    instance_id = boot["instance-id"]
    outcome = idempotency.run_once(
        start_task,
        key=key,
        key_prefix="spot-redis-warmup-start",
        lambda_context=context,
        window_seconds=BOOT_MEMORY_SECONDS,
        boot=boot,
        settings=settings,
    )
    if outcome.in_progress:
        return _skip(f"another invocation is starting the warm-up for {instance_id} right now")
    task_arn = outcome.result["task-arn"]
    if not outcome.first:
        return _skip(
            f"warm-up already started for {what} {instance_id}: task {task_arn}",
            action="duplicate",
            task_arn=task_arn,
        )
    return {"action": "started", "task_arn": task_arn, "instance_id": instance_id}


def start_task(boot: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Run the task and announce it. Runs once per instance id (Powertools Idempotency on DynamoDB)."""
    instance_id = boot["instance-id"]
    response = clients.get("ecs").run_task(
        cluster=settings.cluster_arn,
        taskDefinition=settings.task_definition_arn,
        count=1,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(settings.subnets),
                "securityGroups": list(settings.security_groups),
                "assignPublicIp": settings.assign_public_ip,
            }
        },
        # startedBy names the boot (an instance id fits its 36 characters) and comes back in the task's
        # state change events; no tags, which would need ecs:TagResource.
        startedBy=instance_id,
        # No clientToken: the idempotency record already keeps a boot to one task, and ECS may answer a repeated
        # token with the first call's response, so after a `failures`-only answer (e.g. no Spot capacity) a
        # retry with the same token would get that failure again instead of a new attempt.
    )
    tasks = response.get("tasks") or []
    if not tasks:
        # Raise: the idempotency record is dropped and Lambda retries the event (e.g. no Spot capacity now).
        raise RuntimeError(f"RunTask started no task for {instance_id}: {response.get('failures')}")
    task_arn = tasks[0]["taskArn"]
    logger.info(f"warm-up task {task_arn} started for {instance_id} ({boot['trigger']})", task_arn=task_arn)
    # The task runs: a failure to announce it is logged, never raised (a retry must not start a second task).
    put_event(WARMUP_STARTED, {**boot, "task-arn": task_arn}, raise_on_failure=False)
    return {"task-arn": task_arn}


# --- task state changes: report the result ---------------------------------------------------------------------------


def on_task_state(record: EventRecord, settings: Settings, context: Any) -> dict[str, Any]:
    detail = record.detail
    task_arn = detail_str(record, "taskArn")
    cluster_arn = detail_str(record, "clusterArn")
    logger.append_keys(task_arn=task_arn)
    if cluster_arn != settings.cluster_arn:
        return _skip(f"task {task_arn} runs in cluster {cluster_arn}, not in this stack's cluster")
    family = str(detail.get("taskDefinitionArn", "")).rsplit("/", 1)[-1].split(":", 1)[0]
    if family != settings.task_family:
        return _skip(f"task {task_arn} is of family {family!r}, not the warm-up {settings.task_family!r}")
    if detail.get("lastStatus") != "STOPPED":
        return _skip(f"task {task_arn} is {detail.get('lastStatus')!r}, not STOPPED yet")
    started_by = detail.get("startedBy")
    if not isinstance(started_by, str) or not INSTANCE_ID.fullmatch(started_by):
        return _skip(f"task {task_arn} was not started by this function (startedBy {started_by!r})")
    exit_code, succeeded = _task_result(detail.get("containers"))
    # ECS's stopCode (e.g. SpotInterruption) is logged, not sent: WARMUP_FINISHED's contract has no such key.
    logger.append_keys(stop_code=str(detail.get("stopCode") or ""))
    task = {
        "task-arn": task_arn,
        "instance-id": started_by,
        "stack": settings.stack,
        "result": "succeeded" if succeeded else "failed",
        "exit-code": exit_code,
        "stopped-reason": str(detail.get("stoppedReason") or ""),
    }
    outcome = idempotency.run_once(
        report_task,
        key=idempotency.subject_key("warmup-finished", task_arn),
        key_prefix="spot-redis-warmup-finish",
        lambda_context=context,
        window_seconds=BOOT_MEMORY_SECONDS,
        task=task,
    )
    if outcome.in_progress:
        return _skip(f"another invocation is reporting task {task_arn} right now")
    return {"action": "finished", "task_arn": task_arn, "result": task["result"], "exit_code": exit_code}


def _task_result(containers: Any) -> tuple[int | None, bool]:
    """(exit code, succeeded) of a stopped task: it succeeded when every container exited 0."""
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise MalformedEventError(f"detail.containers must be a list of objects, got {containers!r}")
    codes = [container.get("exitCode") for container in containers]
    if any(code is not None and type(code) is not int for code in codes):
        raise MalformedEventError(f"detail.containers[].exitCode must be whole numbers, got {codes!r}")
    succeeded = bool(codes) and all(code == 0 for code in codes)
    return (0 if succeeded else next((code for code in codes if code), None)), succeeded


def report_task(task: dict[str, Any]) -> dict[str, Any]:
    """Announce the end of a task. Runs once per task ARN; a failed put raises, so that Lambda retries."""
    put_event(WARMUP_FINISHED, task, raise_on_failure=True)
    logger.info(
        f"warm-up task {task['task-arn']} for {task['instance-id']} {task['result']} "
        f"(exit code {task['exit-code']}, {task['stopped-reason'] or 'no reason given'})"
    )
    return {"task-arn": task["task-arn"], "result": task["result"]}


# What this function handles, by (source, detail-type): infra/alerting.py's rules route nothing else here.
ROUTES = {
    (SOURCE, HOST_READY.detail_type): on_host_ready,
    (SOURCE, WARMUP_REQUESTED.detail_type): on_warmup_requested,
    (ECS_SOURCE, ECS_TASK_STATE_CHANGE): on_task_state,
}


# --- helpers ---------------------------------------------------------------------------------------------------------


def put_event(kind: EventKind, detail: dict[str, Any], *, raise_on_failure: bool) -> None:
    """Put one event of ``kind``, shaped (and checked) by spot_redis.events.entry."""
    detail_type = kind.detail_type
    try:
        response = clients.get("events").put_events(Entries=[entry(kind, detail)])
        failed = response.get("FailedEntryCount", 0)
        problem = f"EventBridge refused {detail_type}: {response.get('Entries')}" if failed else None
    except ClientError as error:
        if raise_on_failure:
            raise
        problem = f"could not send {detail_type}: {error}"
    if problem:
        if raise_on_failure:
            raise RuntimeError(problem)
        logger.error(problem, detail=detail)


def _skip(reason: str, action: str = "skipped", **extra: Any) -> dict[str, Any]:
    logger.info(reason)
    return {"action": action, "reason": reason, **extra}


def _instance_id(value: str, where: str) -> str:
    if not INSTANCE_ID.fullmatch(value):
        raise MalformedEventError(f"{where} is not an instance id: {value!r}")
    return value
