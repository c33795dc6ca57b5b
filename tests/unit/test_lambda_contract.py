"""The custom events notify is sent are the ones their senders really put: lambdas/warmup (run, not paraphrased) and
infra/host/bootstrap.sh (its Python snippets that build the entries, run as the host runs them). Each is accepted by
lambdas/notify and makes exactly one Slack message that names the instance. And every event infra/alerting.py's rules
send to notify has a route there."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from tests.unit import lambda_support as support

notify = support.load_lambda("notify")

BOOTSTRAP = support.REPO / "infra" / "host" / "bootstrap.sh"


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


class RecordingEvents:
    """moto's EventBridge client, keeping every entry passed to PutEvents."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.entries: list[dict[str, Any]] = []

    def put_events(self, **kwargs: Any) -> Any:
        self.entries.extend(kwargs["Entries"])
        return self._client.put_events(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


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


def said_once_about(env: support.NotifyEnv, entry: dict[str, Any], instance_id: str) -> None:
    before = len(env.slack.posts)
    result = env.run(as_delivered(entry))
    assert result["status"] == "delivered", (result, entry)
    assert len(env.slack.posts) == before + 1
    assert instance_id in env.slack.posts[-1]["text"]


# --- lambdas/warmup -----------------------------------------------------------------------------------------------


def test_warmup_started_and_finished_as_warmup_puts_them(env: support.NotifyEnv) -> None:
    ecs = support.client("ecs")
    cluster = ecs.create_cluster(clusterName="spot-redis-staging")["cluster"]["clusterArn"]
    task_definition = ecs.register_task_definition(
        family="spot-redis-staging-warmup",
        networkMode="bridge",  # moto 5.2.5 cannot make the ENI of an awsvpc task; the function does not care
        containerDefinitions=[{"name": "warmup", "image": "warmup:latest", "essential": True, "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    table = support.make_idempotency_table("spot-redis-warmup-idempotency")
    events = RecordingEvents(support.client("events"))
    clients = warmup.Clients(ec2=support.client("ec2"), ecs=ecs, events=events, dynamodb=support.client("dynamodb"))
    environ = {
        "STACK_NAME": support.STACK,
        "IDEMPOTENCY_TABLE": table,
        "CLUSTER_ARN": cluster,
        "TASK_DEFINITION_ARN": task_definition,
        "SUBNET_IDS": "subnet-0a1b2c3d4e5f60001",
        "SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60001",
        "WORK_HOURS": "",  # always on
    }
    instance = support.run_instance()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(warmup, "CLIENTS_FACTORY", lambda: clients)
        monkeypatch.setattr(warmup, "CLOCK", lambda: datetime.now(UTC))
        monkeypatch.setattr(warmup, "ENVIRON", environ)
        warmup.reset()
        try:
            context = support.FakeContext(function_name="spot-redis-staging-warmup")
            empty = support.custom_event("Redis Dataset Empty", {"instance-id": instance, "stack": support.STACK})
            started = warmup.handler(empty, context)
            assert started["action"] == "started", started
            stopped = {
                **support.custom_event("ECS Task State Change", {}, str(uuid.uuid4())),
                "source": "aws.ecs",
                "resources": [started["task_arn"]],
                "detail": {
                    "clusterArn": cluster,
                    "taskArn": started["task_arn"],
                    "taskDefinitionArn": task_definition,
                    "lastStatus": "STOPPED",
                    "desiredStatus": "STOPPED",
                    "startedBy": instance,
                    "stopCode": "EssentialContainerExited",
                    "stoppedReason": "Essential container in task exited",
                    "containers": [{"name": "warmup", "lastStatus": "STOPPED", "exitCode": 0}],
                },
            }
            assert warmup.handler(stopped, context)["action"] == "finished"
        finally:
            warmup.reset()

    assert [entry["DetailType"] for entry in events.entries] == ["Redis Warm-up Started", "Redis Warm-up Finished"]
    for entry in events.entries:
        said_once_about(env, entry, instance)
    assert "started" in env.slack.posts[-2]["text"] and "finished successfully" in env.slack.posts[-1]["text"]


# --- infra/host/bootstrap.sh --------------------------------------------------------------------------------------


def bootstrap_function(name: str) -> str:
    text = BOOTSTRAP.read_text()
    match = re.search(rf"^{name}\(\) \{{\n(.*?)^\}}\n", text, re.MULTILINE | re.DOTALL)
    assert match, f"no function {name} in {BOOTSTRAP}"
    return match.group(1)


def dataset_entries(kind: str, instance_id: str, age: str) -> list[dict[str, Any]]:
    """put_dataset_event's heredoc, run as `python3 - KIND INSTANCE_ID STACK AGE`."""
    match = re.search(r"<<'PY'\n(.*?)\nPY\n", bootstrap_function("put_dataset_event"), re.DOTALL)
    assert match, "put_dataset_event no longer builds its entries in a python3 heredoc"
    return run_python(match.group(1), kind, instance_id, support.STACK, age)


def failure_entries(instance_id: str, step: str) -> list[dict[str, Any]]:
    """report_failure's `python3 -c '...' INSTANCE_ID STACK STEP`."""
    match = re.search(r"python3 -c '(.*?)'", bootstrap_function("report_failure"), re.DOTALL)
    assert match, "report_failure no longer builds its entries with python3 -c"
    return run_python(match.group(1), instance_id, support.STACK, step)


def run_python(code: str, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, *args], capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(done.stdout)


def test_bootstrap_events_as_the_host_puts_them(env: support.NotifyEnv) -> None:
    restored, empty, failed = (f"i-0{n}23456789abcdef0" for n in range(3))  # long gone: no instance, no tags
    cases = [
        (dataset_entries("Redis Dataset Restored", restored, "5400"), restored, "1 h 30 min"),
        (dataset_entries("Redis Dataset Empty", empty, "0"), empty, "EMPTY"),
        (failure_entries(failed, "11/13 ansible-playbook site.yml (local)"), failed, "11/13 ansible-playbook"),
    ]
    for entries, instance_id, words in cases:
        [entry] = entries
        said_once_about(env, entry, instance_id)
        assert words in env.slack.posts[-1]["text"]


# --- infra/alerting.py's rules --------------------------------------------------------------------------------------


def test_every_event_a_rule_sends_to_notify_has_a_message() -> None:
    """A rule routing an event notify has no route for would turn every such event into a 'malformed' error log."""
    from infra import event_patterns
    from tests.unit.pulumi_harness import run_program

    run = run_program()
    notify_arn = run.named("notify-function").outputs["arn"]
    targets = {t.inputs["rule"]: t.inputs["arn"] for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget")}
    sent: set[tuple[str, str]] = set()
    for rule in run.of_type("aws:cloudwatch/eventRule:EventRule"):
        if targets[rule.outputs["name"]] != notify_arn:
            continue
        pattern = json.loads(rule.inputs["eventPattern"])
        # The stack-events rule takes every detail-type of our source: those the host and warmup put.
        detail_types = pattern.get("detail-type") or [
            event_patterns.DATASET_EMPTY,
            event_patterns.DATASET_RESTORED,
            event_patterns.WARMUP_STARTED,
            event_patterns.WARMUP_FINISHED,
            event_patterns.HOST_BOOTSTRAP_FAILED,
        ]
        sent |= {(source, detail_type) for source in pattern["source"] for detail_type in detail_types}
    assert len(sent) >= 12
    assert sent <= set(notify.ROUTES), sent - set(notify.ROUTES)
