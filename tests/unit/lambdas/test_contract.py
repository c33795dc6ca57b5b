"""The custom events the Lambdas get are the contract of spot_redis/events.py, and the Lambdas understand all of it.

- Every kind the host agent sends (AGENT_EVENTS), built with spot_redis.events.entry with every required and optional
  key filled, is handled by lambdas/notify: one Slack message that names the instance, or deliberate silence for
  REBALANCE_SEEN; HOST_READY is handled by lambdas/warmup too (the batch for `empty` only).
- What lambdas/warmup and lambdas/capacity really put (run, not paraphrased) is handled by notify, and every key of
  their kinds is understood.
- Every event infra/alerting.py's rules send to a Lambda has a route there.
- Each function's zip, as infra/alerting.py packages it, imports its handler with nothing but the zip (and what the
  runtime and the Powertools layer provide): `spot_redis.events` comes from the zip, without the host agent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from spot_redis.events import (
    AGENT_EVENTS,
    ALL_EVENTS,
    BACK_TO_SPOT,
    BOOTSTRAP_FAILED,
    HOST_DRAINED,
    HOST_READY,
    ON_DEMAND,
    REBALANCE_SEEN,
    SOURCE,
    WARMUP_DATASETS,
    WARMUP_FINISHED,
    WARMUP_REQUESTED,
    WARMUP_STARTED,
    Dataset,
    EventKind,
    entry,
)
from tests.unit import lambda_support as support

notify = support.load_lambda("notify")
capacity = support.load_lambda("capacity")

from common.runtime import clients  # noqa: E402 - lambdas/ is on sys.path once lambda_support is imported


def load_warmup() -> ModuleType:
    """lambdas/warmup/app.py under a name of its own, with lambdas/warmup on sys.path (its `warmup_hours` module)."""
    folder = str(support.LAMBDAS / "warmup")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "spot_redis_contract_warmup"
    spec = importlib.util.spec_from_file_location(name, support.LAMBDAS / "warmup" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


warmup = load_warmup()

# Every key of every kind, filled as its sender fills it (instance-id and stack are added per test).
FULL_DETAILS: dict[str, dict[str, Any]] = {
    HOST_READY.detail_type: {
        "dataset": "complete",
        "saved-at": "2026-11-20T05:12:51Z",
        "marker-instance-id": "i-0fedcba9876543210",
        "boot-seconds": 95.5,
        "steps": {"packages": 41.2, "ansible": 20.3, "volume": 3.1, "configure": 28.0, "total": 95.5},
    },
    HOST_DRAINED.detail_type: {
        "notice-time": "2026-11-20T05:14:40Z",
        "steps": {"leave_group": 0.4, "deregister": 0.3, "save": 1.2, "stop_redis": 0.8, "detach_volume": 25.0},
        "failed-steps": ["detach_volume"],
        "keys": 12345,
        "saved-at": "2026-11-20T05:12:51Z",
        "drain-seconds": 27.9,
        "volume-id": "vol-0123456789abcdef0",
    },
    REBALANCE_SEEN.detail_type: {"noticed-at": "2026-11-20T05:00:00Z"},
    BOOTSTRAP_FAILED.detail_type: {"step": "configure", "reason": "ansible-playbook site.yml failed (exit 2)"},
    WARMUP_STARTED.detail_type: {
        "task-arn": f"arn:aws:ecs:{support.REGION}:{support.ACCOUNT}:task/spot-redis-staging/0123456789abcdef",
        "trigger": HOST_READY.detail_type,
        "dataset": "empty",
    },
    WARMUP_FINISHED.detail_type: {
        "result": "failed",
        "task-arn": f"arn:aws:ecs:{support.REGION}:{support.ACCOUNT}:task/spot-redis-staging/0123456789abcdef",
        "exit-code": 3,
        "stopped-reason": "Essential container in task exited",
    },
    ON_DEMAND.detail_type: {
        "group": support.GROUP,
        "activity-id": "3c1f6a2e-9b4d-4e7a-8c5f-6d2e1b0a9f8c",
        "status-message": "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity "
        "available that matches your request. Launching EC2 instance failed.",
        "availability-zone": "ap-northeast-1a",
        "instance-type": "t4g.small",
        "on-demand-per-hour": 0.0216,
        "spot-per-hour": 0.007,
        "extra-per-hour": 0.0146,
        "prices-as-of": "2026-12-05",
        "types-without-price": ["c6gn.medium"],
    },
    BACK_TO_SPOT.detail_type: {"group": support.GROUP, "activity-id": "7e6d5c4b-3a2f-4e1d-9c8b-7a6f5e4d3c2b"},
    WARMUP_REQUESTED.detail_type: {
        "request-id": "5f0c2d1e-8a7b-4c3d-9e2f-1a0b9c8d7e6f",
        "requested-by": f"arn:aws:sts::{support.ACCOUNT}:assumed-role/operator/alice",
        "reason": "new fixtures",
        "requested-at": "2026-11-20T05:20:00Z",
    },
}

SILENT = {REBALANCE_SEEN.detail_type}  # AWS's own rebalance event already makes a message


def full_entry(kind: EventKind, instance_id: str, **changes: Any) -> dict[str, Any]:
    """A PutEvents entry of ``kind`` with every key of the contract filled (entry() refuses a key it lacks); the
    instance id goes to the kinds about an instance."""
    about = {"instance-id": instance_id} if "instance-id" in kind.keys else {}
    return entry(kind, {**about, "stack": support.STACK, **FULL_DETAILS[kind.detail_type], **changes})


def as_delivered(entry: dict[str, Any]) -> dict[str, Any]:
    """A PutEvents entry as EventBridge hands it to a target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": support.ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": support.REGION,
        "resources": entry.get("Resources", []),
        "detail": json.loads(entry["Detail"]),
    }


@pytest.fixture
def env() -> Iterator[support.NotifyEnv]:
    with support.notify_env(notify) as env:
        yield env


@dataclass
class WarmupWorld:
    cluster: str
    task_definition: str
    events: support.RecordingEvents

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        return warmup.handler(event, support.FakeContext(function_name="spot-redis-staging-warmup"))


@pytest.fixture
def warmup_world(env: support.NotifyEnv) -> Iterator[WarmupWorld]:
    """lambdas/warmup in the same moto as notify, always inside working hours."""
    ecs = support.client("ecs")
    cluster = ecs.create_cluster(clusterName="spot-redis-staging")["cluster"]["clusterArn"]
    task_definition = ecs.register_task_definition(
        family="spot-redis-staging-warmup",
        networkMode="bridge",  # moto 5.2.5 cannot make the ENI of an awsvpc task; the function does not care
        containerDefinitions=[{"name": "warmup", "image": "warmup:latest", "essential": True, "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    events = support.RecordingEvents(support.client("events"))
    # Both functions run in this one process: they share common.runtime's clients (notify_env made them from moto)
    # and the environment, as they share the stack's idempotency table; warmup's own settings are added to it.
    environ = {
        "CLUSTER_ARN": cluster,
        "TASK_DEFINITION_ARN": task_definition,
        "SUBNET_IDS": "subnet-0a1b2c3d4e5f60001",
        "SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60001",
        "ASSIGN_PUBLIC_IP": "ENABLED",
        "WORK_HOURS": "",  # always on
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        clients.set("events", events)
        yield WarmupWorld(cluster, task_definition, events)


def said_once_about(env: support.NotifyEnv, entry: dict[str, Any], subject: str) -> None:
    """notify makes one message of the entry, naming ``subject`` (the instance, or the group), and none of its
    redelivery."""
    before = len(env.slack.posts)
    event = as_delivered(entry)
    result = env.run(event)
    assert result["status"] == "delivered", (result, entry)
    assert len(env.slack.posts) == before + 1
    assert subject in env.slack.posts[-1]["text"]
    env.run({**event, "id": str(uuid.uuid4())})
    assert len(env.slack.posts) == before + 1


# --- the contract itself ------------------------------------------------------------------------------------------


def test_the_full_details_fill_every_key_of_every_kind() -> None:
    """A key added to spot_redis/events.py must be added here, and so be sent through the Lambdas below."""
    for kind in ALL_EVENTS:
        assert set(FULL_DETAILS[kind.detail_type]) == set(kind.keys) - {"instance-id", "stack"}, kind.detail_type
    assert set(FULL_DETAILS) == {kind.detail_type for kind in ALL_EVENTS}


# --- what the host agent sends --------------------------------------------------------------------------------------

AGENT_CASES = [
    pytest.param(kind, changes, id=f"{kind.detail_type}{'-' if changes else ''}{'-'.join(map(str, changes.values()))}")
    for kind in AGENT_EVENTS
    for changes in ([{"dataset": str(dataset)} for dataset in Dataset] if kind is HOST_READY else [{}])
]


@pytest.mark.parametrize(("kind", "changes"), AGENT_CASES)
def test_every_event_the_agent_sends_is_handled_by_notify(
    env: support.NotifyEnv, kind: EventKind, changes: dict[str, Any]
) -> None:
    instance = "i-0123456789abcdef0"  # long gone: no instance, no tags (custom events are ours by their stack)
    event = as_delivered(full_entry(kind, instance, **changes))
    result = env.run(event)
    errors = [r for r in support.log_records(env.logs) if r["level"] == "ERROR"]
    assert errors == []
    if kind.detail_type in SILENT:
        assert result == {"status": "ignored"}
        assert env.slack.posts == [] and env.fallback() == []
        assert any(instance == r.get("instance_id") for r in support.log_records(env.logs))
        return
    assert result["status"] == "delivered", result
    [post] = env.slack.posts
    assert instance in post["text"]
    assert env.run({**event, "id": str(uuid.uuid4())})["status"] == "delivered"  # redelivered: said once
    assert len(env.slack.posts) == 1


@pytest.mark.parametrize("dataset", list(Dataset), ids=str)
def test_host_ready_is_handled_by_warmup(env: support.NotifyEnv, warmup_world: WarmupWorld, dataset: Dataset) -> None:
    instance = support.run_instance()
    result = warmup_world.handle(as_delivered(full_entry(HOST_READY, instance, dataset=str(dataset))))
    if dataset in WARMUP_DATASETS:
        assert result["action"] == "started", result
        [started] = warmup_world.events.entries
        assert json.loads(started["Detail"])["dataset"] == str(dataset)
    else:
        assert result["action"] == "skipped", result
        assert str(dataset) in result["reason"]
        assert warmup_world.events.entries == []


# --- what lambdas/warmup sends ---------------------------------------------------------------------------------------


def test_warmup_started_and_finished_as_warmup_puts_them(env: support.NotifyEnv, warmup_world: WarmupWorld) -> None:
    instance = support.run_instance()
    empty = entry(HOST_READY, {"instance-id": instance, "stack": support.STACK, "dataset": "empty"})
    started = warmup_world.handle(as_delivered(empty))
    assert started["action"] == "started", started
    stopped = {
        **support.custom_event("ECS Task State Change", {}, str(uuid.uuid4())),
        "source": "aws.ecs",
        "resources": [started["task_arn"]],
        "detail": {
            "clusterArn": warmup_world.cluster,
            "taskArn": started["task_arn"],
            "taskDefinitionArn": warmup_world.task_definition,
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "startedBy": instance,
            "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
            "containers": [{"name": "warmup", "lastStatus": "STOPPED", "exitCode": 0}],
        },
    }
    assert warmup_world.handle(stopped)["action"] == "finished"

    entries = warmup_world.events.entries
    assert [e["DetailType"] for e in entries] == [WARMUP_STARTED.detail_type, WARMUP_FINISHED.detail_type]
    assert {e["Source"] for e in entries} == {SOURCE}
    for sent in entries:
        said_once_about(env, sent, instance)
    assert "started" in env.slack.posts[-2]["text"] and "finished successfully" in env.slack.posts[-1]["text"]


@pytest.mark.parametrize("kind", [WARMUP_STARTED, WARMUP_FINISHED, WARMUP_REQUESTED], ids=lambda kind: kind.detail_type)
def test_every_key_of_the_warmups_events_is_understood_by_notify(env: support.NotifyEnv, kind: EventKind) -> None:
    said_once_about(env, full_entry(kind, "i-0123456789abcdef0"), "i-0123456789abcdef0")


# --- what lambdas/capacity sends ------------------------------------------------------------------------------------


def test_on_demand_and_back_to_spot_as_capacity_puts_them(env: support.NotifyEnv, monkeypatch: Any) -> None:
    monkeypatch.setenv("ASG_NAME", support.GROUP)
    support.make_group(desired=1)
    autoscaling = support.AwsUpdateSemantics(support.client("autoscaling"))
    events = support.RecordingEvents(support.client("events"))
    clients.set("autoscaling", autoscaling)
    clients.set("events", events)

    assert capacity.handler(support.load_event(support.NO_SPOT_CAPACITY_EVENT), env.context)["action"] == "switched"
    autoscaling.set_desired_capacity(AutoScalingGroupName=support.GROUP, DesiredCapacity=0)  # the scheduled stop
    assert capacity.handler(support.load_event(support.TERMINATED_EVENT), env.context)["action"] == "back-to-spot"

    assert [e["DetailType"] for e in events.entries] == [ON_DEMAND.detail_type, BACK_TO_SPOT.detail_type]
    for sent in events.entries:
        said_once_about(env, sent, support.GROUP)
    switched, returned = (post["text"] for post in env.slack.posts)
    assert "runs ON-DEMAND ($0.0146/h more)" in switched and "t4g.small costs $0.0216/h" in switched
    assert "back on Spot" in returned


@pytest.mark.parametrize("kind", [ON_DEMAND, BACK_TO_SPOT], ids=lambda kind: kind.detail_type)
def test_every_key_of_the_capacity_events_is_understood_by_notify(env: support.NotifyEnv, kind: EventKind) -> None:
    said_once_about(env, full_entry(kind, "i-0123456789abcdef0"), support.GROUP)


def test_on_demand_without_a_price_says_so(env: support.NotifyEnv) -> None:
    prices = ("instance-type", "on-demand-per-hour", "spot-per-hour", "extra-per-hour", "prices-as-of")
    detail = {key: value for key, value in FULL_DETAILS[ON_DEMAND.detail_type].items() if key not in prices}
    said_once_about(env, entry(ON_DEMAND, {"stack": support.STACK, **detail}), support.GROUP)
    assert "is not in the price table" in env.slack.posts[-1]["text"]


# --- infra/alerting.py's rules ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def program() -> Any:
    from tests.unit.pulumi_harness import run_program

    return run_program()


def routed_events(program: Any, function: str) -> tuple[set[tuple[str, str]], list[dict[str, Any]]]:
    """(source, detail-type) of every event a rule sends to ``function``, and those rules' patterns. A rule without
    a detail-type (notify's stack-events) takes every detail-type of the contract."""
    function_arn = program.named(f"{function}-function").outputs["arn"]
    targets = {t.inputs["rule"]: t.inputs["arn"] for t in program.of_type("aws:cloudwatch/eventTarget:EventTarget")}
    sent: set[tuple[str, str]] = set()
    patterns = []
    for rule in program.of_type("aws:cloudwatch/eventRule:EventRule"):
        if targets[rule.outputs["name"]] != function_arn:
            continue
        pattern = json.loads(rule.inputs["eventPattern"])
        patterns.append(pattern)
        detail_types = pattern.get("detail-type") or [kind.detail_type for kind in ALL_EVENTS]
        sent |= {(source, detail_type) for source in pattern["source"] for detail_type in detail_types}
    return sent, patterns


def test_every_event_a_rule_sends_to_notify_has_a_message(program: Any) -> None:
    """A rule routing an event notify has no route for would turn every such event into a 'malformed' error log."""
    sent, _ = routed_events(program, "notify")
    assert {(SOURCE, kind.detail_type) for kind in ALL_EVENTS} <= sent
    assert len(sent) >= 12
    assert sent <= set(notify.ROUTES), sent - set(notify.ROUTES)


def test_every_event_a_rule_sends_to_capacity_has_a_route(program: Any) -> None:
    sent, patterns = routed_events(program, "capacity")
    assert sent == {
        ("aws.autoscaling", "EC2 Instance Launch Unsuccessful"),
        ("aws.autoscaling", "EC2 Instance Terminate Successful"),
    }
    assert sent <= set(capacity.ROUTES), sent - set(capacity.ROUTES)
    assert all(pattern["detail"]["AutoScalingGroupName"] == ["spot-redis-example-redis"] for pattern in patterns)


def test_every_event_a_rule_sends_to_warmup_has_a_route(program: Any) -> None:
    sent, patterns = routed_events(program, "warmup")
    assert sent == {
        (SOURCE, HOST_READY.detail_type),
        (SOURCE, WARMUP_REQUESTED.detail_type),
        ("aws.ecs", "ECS Task State Change"),
    }
    assert sent <= set(warmup.ROUTES), sent - set(warmup.ROUTES)
    [ready] = [pattern for pattern in patterns if pattern.get("detail-type") == [HOST_READY.detail_type]]
    [requested] = [pattern for pattern in patterns if pattern.get("detail-type") == [WARMUP_REQUESTED.detail_type]]
    assert requested["source"] == [SOURCE] and list(requested["detail"]) == ["stack"]  # this stack's only
    assert ready["detail"]["dataset"] == [str(dataset) for dataset in WARMUP_DATASETS]


# --- the deployment packages ----------------------------------------------------------------------------------------

IMPORT_HANDLER = (
    "import sys\n"
    "package = sys.argv[1]\n"
    # The checkout installed for the `spot-redis` command (pip install -e ., the Makefile does it) is not in the
    # Lambda runtime: its import hooks go, so that the zip is the only place spot_redis can come from.
    "editable = lambda hook: getattr(hook, '__module__', '').startswith('__editable__')\n"
    "sys.meta_path[:] = [finder for finder in sys.meta_path if not editable(finder)]\n"
    "sys.path_hooks[:] = [hook for hook in sys.path_hooks if not editable(hook)]\n"
    "sys.path_importer_cache.clear()\n"
    "sys.path.insert(0, package)\n"
    "import app, common.events, spot_redis.events\n"
    "for module in (app, common.events, spot_redis.events):\n"
    "    assert module.__file__.startswith(package), module.__file__\n"
    "assert callable(app.handler)\n"
    "try:\n"
    "    import spot_redis.agent\n"
    "except ModuleNotFoundError:\n"
    "    print('ok')\n"
)


def unpacked_zip(program: Any, function: str, folder: Path, without: str | None = None) -> Path:
    """The function's code as the program declares it (its AssetArchive), zipped, then unpacked as Lambda does."""
    archive = program.named(f"{function}-function").inputs["code"]
    zipped = folder / f"{function}.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as package:
        for relative, asset in archive.assets.items():
            if not (without and relative.startswith(f"{without}/")):
                package.write(asset.path, relative)
    target = folder / function
    with zipfile.ZipFile(zipped) as package:
        package.extractall(target)
    return target


def import_handler(package: Path) -> subprocess.CompletedProcess[str]:
    """Isolated Python (-I: no PYTHONPATH, no current directory) run outside the repository: the zip is the only
    place spot_redis, common and the handler can come from (boto3 and Powertools stand in for the runtime's and the
    layer's)."""
    command = [sys.executable, "-I", "-c", IMPORT_HANDLER, str(package)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60, cwd=package.parent)


@pytest.mark.parametrize("function", ["notify", "warmup", "capacity"])
def test_the_zip_imports_its_handler_with_the_event_contract(program: Any, tmp_path: Path, function: str) -> None:
    package = unpacked_zip(program, function, tmp_path)
    assert sorted(p.relative_to(package).as_posix() for p in (package / "spot_redis").rglob("*")) == [
        "spot_redis/__init__.py",
        "spot_redis/events.py",
    ]
    result = import_handler(package)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("function", ["notify", "warmup", "capacity"])
def test_without_the_contract_in_the_zip_the_handler_would_not_import(
    program: Any, tmp_path: Path, function: str
) -> None:
    """The control: the test above passes because of the packaged files, not because of the machine."""
    result = import_handler(unpacked_zip(program, function, tmp_path, without="spot_redis"))
    assert result.returncode != 0
    assert "No module named 'spot_redis'" in result.stderr
