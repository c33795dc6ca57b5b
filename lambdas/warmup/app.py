"""Warm-up Lambda: re-run the cache warm-up batch when a Spot Redis host came up without its data.

Events (EventBridge; the custom events' source, detail-types and keys are spot_redis/events.py's, packaged into the
zip):
- HOST_READY ("Redis Host Ready") whose `dataset` is one of WARMUP_DATASETS (`empty`: the data is lost): for an
  instance of this stack, inside WORK_HOURS, run the warm-up task once per host boot (Fargate Spot, the given subnets
  and security groups, no public IP), then emit WARMUP_STARTED with the `trigger` and the `dataset`. `complete`
  (nothing lost) and `crash` (at most the last second of writes lost) start nothing: the data is there.
- `ECS Task State Change` (source aws.ecs) of a stopped warm-up task in this stack's cluster: emit WARMUP_FINISHED
  with the result, once per task.

An event this function cannot use is logged as an error with its id and the function returns normally: a retry would
not help. AWS errors (DynamoDB, ECS, EventBridge unreachable) do raise, so that Lambda retries the event.

Packaged with lambdas/common as the `common` package; the handler is `app.handler`.
"""

from __future__ import annotations

import datetime
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from botocore.exceptions import ClientError
from common.events import MalformedEventError, contract_keys, dataset_value
from common.ownership import STACK_TAG
from warmup_hours import WorkHours, parse_work_hours

from spot_redis.events import (
    HOST_READY,
    SOURCE,
    WARMUP_DATASETS,
    WARMUP_FINISHED,
    WARMUP_STARTED,
    Dataset,
    EventKind,
    entry,
)

ECS_SOURCE = "aws.ecs"
ECS_TASK_STATE_CHANGE = "ECS Task State Change"
# The detail keys this function reads from HOST_READY, checked against the contract when the module loads.
INSTANCE_ID_KEY, STACK_KEY, DATASET_KEY = contract_keys(HOST_READY, "instance-id", "stack", "dataset")
# One host boot is one instance id (never reused): remember it well past any redelivery of its events.
BOOT_MEMORY_SECONDS = 2 * 24 * 3600
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")

logger = Logger(service="spot-redis-warmup")


class BadEventError(ValueError):
    """The event lacks what this function needs; the message says what."""


class ConfigError(RuntimeError):
    """The function's environment is wrong (a deployment bug): raised, so that it shows in the error metrics."""


@dataclass(frozen=True)
class Settings:
    stack: str
    table: str
    cluster_arn: str
    task_definition_arn: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    work_hours: WorkHours | None  # None: always on

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise ConfigError(f"environment variable {name} is not set")
            return value

        def listed(name: str) -> tuple[str, ...]:
            values = tuple(item.strip() for item in required(name).split(",") if item.strip())
            if not values:
                raise ConfigError(f"environment variable {name} lists nothing")
            return values

        try:
            hours = parse_work_hours(environ.get("WORK_HOURS"))
        except ValueError as error:
            raise ConfigError(str(error)) from None
        return cls(
            stack=required("STACK_NAME"),
            table=required("IDEMPOTENCY_TABLE"),
            cluster_arn=required("CLUSTER_ARN"),
            task_definition_arn=required("TASK_DEFINITION_ARN"),
            subnets=listed("SUBNET_IDS"),
            security_groups=listed("SECURITY_GROUP_IDS"),
            work_hours=hours,
        )

    @property
    def task_family(self) -> str:
        """`arn:...:task-definition/FAMILY:REV` (or a bare `FAMILY[:REV]`) -> FAMILY."""
        return self.task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0]


@dataclass(frozen=True)
class Clients:
    ec2: Any
    ecs: Any
    events: Any
    dynamodb: Any

    @classmethod
    def from_boto3(cls) -> Clients:
        return cls(
            ec2=boto3.client("ec2"),
            ecs=boto3.client("ecs"),
            events=boto3.client("events"),
            dynamodb=boto3.client("dynamodb"),
        )


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# Injection points: tests replace these (and call reset()); Lambda uses the defaults.
CLIENTS_FACTORY: Callable[[], Clients] = Clients.from_boto3
CLOCK: Callable[[], datetime.datetime] = utc_now
ENVIRON: Mapping[str, str] = os.environ

_warmup: Warmup | None = None

# What this function handles, by (source, detail-type): infra/alerting.py's rules route nothing else here.
ROUTES = {
    (SOURCE, HOST_READY.detail_type): "_on_host_ready",
    (ECS_SOURCE, ECS_TASK_STATE_CHANGE): "_on_task_state",
}


def reset() -> None:
    """Forget the per-container state (settings, clients, idempotency store)."""
    global _warmup
    _warmup = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _warmup
    if _warmup is None:
        _warmup = Warmup(Settings.from_environ(ENVIRON), CLIENTS_FACTORY(), CLOCK)
    return _warmup.handle(event, context)


class Warmup:
    """One per container: the settings, the clients and the idempotency store outlive an invocation."""

    def __init__(self, settings: Settings, clients: Clients, clock: Callable[[], datetime.datetime]):
        self.settings = settings
        self.clients = clients
        self.clock = clock
        # Key on what the event is about, not on the event id: one boot = one instance id; one task = one ARN.
        # raise_on_no_idempotency_key: a payload without its key must fail loudly, never run unguarded.
        self.boot_config = IdempotencyConfig(
            event_key_jmespath='"instance-id"',
            expires_after_seconds=BOOT_MEMORY_SECONDS,
            raise_on_no_idempotency_key=True,
        )
        self.task_config = IdempotencyConfig(
            event_key_jmespath='"task-arn"',
            expires_after_seconds=BOOT_MEMORY_SECONDS,
            raise_on_no_idempotency_key=True,
        )
        # One persistence layer per idempotent function: a layer takes the config of the first call it serves and
        # ignores every later one (Powertools' BasePersistenceLayer.configure), so a shared layer would key both
        # functions on whichever key came first. Each layer's key prefix is its own function's name.
        self._start_once = idempotent_function(
            data_keyword_argument="boot",
            persistence_store=DynamoDBPersistenceLayer(table_name=settings.table, boto3_client=clients.dynamodb),
            config=self.boot_config,
        )(self._start)
        self._finish_once = idempotent_function(
            data_keyword_argument="task",
            persistence_store=DynamoDBPersistenceLayer(table_name=settings.table, boto3_client=clients.dynamodb),
            config=self.task_config,
        )(self._finish)

    # --- dispatch ----------------------------------------------------------------------------------------------

    def handle(self, raw: Any, context: Any) -> dict[str, Any]:
        logger.clear_state()
        event_id = raw.get("id") if isinstance(raw, dict) else None
        logger.append_keys(event_id=event_id)
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self.boot_config.register_lambda_context(context)
            self.task_config.register_lambda_context(context)
        try:
            event = _eventbridge_event(raw)
            logger.append_keys(detail_type=event.detail_type, source=event.source)
            route = ROUTES.get((event.source, event.detail_type))
            if route is None:
                raise BadEventError(f"unexpected event: source {event.source!r}, detail-type {event.detail_type!r}")
            return getattr(self, route)(event)
        except (BadEventError, MalformedEventError) as error:
            logger.error(f"event {event_id} ignored: {error}")
            return {"action": "ignored", "reason": str(error)}

    # --- the host is ready: start the warm-up task if its data is lost ------------------------------------------

    def _on_host_ready(self, event: EventBridgeEvent) -> dict[str, Any]:
        detail = event.detail
        instance_id = _instance_id(detail.get(INSTANCE_ID_KEY), f"detail.{INSTANCE_ID_KEY}")
        stack = _text(detail.get(STACK_KEY), f"detail.{STACK_KEY}")
        dataset = dataset_value(detail.get(DATASET_KEY), f"detail.{DATASET_KEY}")
        logger.append_keys(instance_id=instance_id, dataset=str(dataset))
        if stack != self.settings.stack:
            return self._skip(f"event is about stack {stack!r}, this function serves {self.settings.stack!r}")
        if dataset not in WARMUP_DATASETS:
            lost = "nothing was lost" if dataset is Dataset.COMPLETE else "at most the last second of writes was lost"
            return self._skip(f"{instance_id} came up with dataset {dataset} ({lost}): no warm-up")
        if not self._is_ours(instance_id):
            return self._skip(f"instance {instance_id} is not tagged {STACK_TAG}={self.settings.stack}")
        hours = self.settings.work_hours
        now = self.clock()
        if hours is not None and not hours.contains(now):
            return self._skip(f"warm-up not started for {instance_id}: {hours.why_outside(now)}")

        invocation = str(uuid.uuid4())
        boot = {
            "instance-id": instance_id,
            "stack": stack,
            "trigger": event.detail_type,
            "dataset": str(dataset),
            "invocation": invocation,
        }
        try:
            result = self._start_once(boot=boot)
        except IdempotencyAlreadyInProgressError:
            return self._skip(f"another invocation is starting the warm-up for {instance_id} right now")
        if result["invocation"] != invocation:
            return self._skip(
                f"warm-up already started for this boot of {instance_id}: task {result['task-arn']}",
                action="duplicate",
                task_arn=result["task-arn"],
            )
        return {"action": "started", "task_arn": result["task-arn"], "instance_id": instance_id}

    def _start(self, boot: dict[str, Any]) -> dict[str, Any]:
        """Run the task and announce it. Runs once per instance id (Powertools Idempotency on DynamoDB)."""
        instance_id = boot["instance-id"]
        settings = self.settings
        response = self.clients.ecs.run_task(
            cluster=settings.cluster_arn,
            taskDefinition=settings.task_definition_arn,
            count=1,
            capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(settings.subnets),
                    "securityGroups": list(settings.security_groups),
                    "assignPublicIp": "DISABLED",
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
        detail = {
            "instance-id": instance_id,
            "stack": boot["stack"],
            "task-arn": task_arn,
            "trigger": boot["trigger"],
            "dataset": boot["dataset"],
        }
        # The task runs: a failure to announce it is logged, never raised (a retry must not start a second task).
        self._put_event(WARMUP_STARTED, detail, raise_on_failure=False)
        return {"task-arn": task_arn, "invocation": boot["invocation"]}

    # --- task state changes: report the result ------------------------------------------------------------------

    def _on_task_state(self, event: EventBridgeEvent) -> dict[str, Any]:
        detail = event.detail
        task_arn = _text(detail.get("taskArn"), "detail.taskArn")
        cluster_arn = _text(detail.get("clusterArn"), "detail.clusterArn")
        logger.append_keys(task_arn=task_arn)
        if cluster_arn != self.settings.cluster_arn:
            return self._skip(f"task {task_arn} runs in cluster {cluster_arn}, not in this stack's cluster")
        family = str(detail.get("taskDefinitionArn", "")).rsplit("/", 1)[-1].split(":", 1)[0]
        if family != self.settings.task_family:
            return self._skip(f"task {task_arn} is of family {family!r}, not the warm-up {self.settings.task_family!r}")
        if detail.get("lastStatus") != "STOPPED":
            return self._skip(f"task {task_arn} is {detail.get('lastStatus')!r}, not STOPPED yet")
        started_by = detail.get("startedBy")
        if not isinstance(started_by, str) or not INSTANCE_ID.fullmatch(started_by):
            return self._skip(f"task {task_arn} was not started by this function (startedBy {started_by!r})")
        containers = detail.get("containers")
        if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
            raise BadEventError(f"detail.containers must be a list of objects, got {containers!r}")
        codes = [container.get("exitCode") for container in containers]
        if any(code is not None and type(code) is not int for code in codes):
            raise BadEventError(f"detail.containers[].exitCode must be whole numbers, got {codes!r}")
        succeeded = bool(codes) and all(code == 0 for code in codes)
        exit_code = 0 if succeeded else next((code for code in codes if code), None)
        # ECS's stopCode (e.g. SpotInterruption) is logged, not sent: WARMUP_FINISHED's contract has no such key.
        logger.append_keys(stop_code=str(detail.get("stopCode") or ""))
        task = {
            "task-arn": task_arn,
            "instance-id": started_by,
            "stack": self.settings.stack,
            "result": "succeeded" if succeeded else "failed",
            "exit-code": exit_code,
            "stopped-reason": str(detail.get("stoppedReason") or ""),
        }
        try:
            self._finish_once(task=task)
        except IdempotencyAlreadyInProgressError:
            return self._skip(f"another invocation is reporting task {task_arn} right now")
        return {"action": "finished", "task_arn": task_arn, "result": task["result"], "exit_code": exit_code}

    def _finish(self, task: dict[str, Any]) -> dict[str, Any]:
        """Announce the end of a task. Runs once per task ARN; a failed put raises, so that Lambda retries."""
        self._put_event(WARMUP_FINISHED, task, raise_on_failure=True)
        logger.info(
            f"warm-up task {task['task-arn']} for {task['instance-id']} {task['result']} "
            f"(exit code {task['exit-code']}, {task['stopped-reason'] or 'no reason given'})"
        )
        return {"task-arn": task["task-arn"], "result": task["result"]}

    # --- helpers ------------------------------------------------------------------------------------------------

    def _is_ours(self, instance_id: str) -> bool:
        """Tagged spot-redis:stack=STACK_NAME, read with DescribeInstances: the EC2 read the role grants."""
        try:
            reservations = self.clients.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "").startswith("InvalidInstanceID"):
                return False
            raise
        tags = [tag for r in reservations for i in r.get("Instances", []) for tag in i.get("Tags", [])]
        return any(tag.get("Key") == STACK_TAG and tag.get("Value") == self.settings.stack for tag in tags)

    def _put_event(self, kind: EventKind, detail: dict[str, Any], *, raise_on_failure: bool) -> None:
        """Put one event of ``kind``, shaped (and checked) by spot_redis.events.entry."""
        detail_type = kind.detail_type
        try:
            response = self.clients.events.put_events(Entries=[entry(kind, detail)])
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

    @staticmethod
    def _skip(reason: str, action: str = "skipped", **extra: Any) -> dict[str, Any]:
        logger.info(reason)
        return {"action": action, "reason": reason, **extra}


def _eventbridge_event(raw: Any) -> EventBridgeEvent:
    if not isinstance(raw, dict):
        raise BadEventError(f"event is a {type(raw).__name__}, not an object")
    for key in ("source", "detail-type"):
        if not isinstance(raw.get(key), str):
            raise BadEventError(f"{key} is missing or not a string")
    if not isinstance(raw.get("detail"), dict):
        raise BadEventError("detail is missing or not an object")
    return EventBridgeEvent(raw)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadEventError(f"{where} is missing or not a string")
    return value


def _instance_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not INSTANCE_ID.fullmatch(value):
        raise BadEventError(f"{where} is not an instance id: {value!r}")
    return value
