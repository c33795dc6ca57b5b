"""lab/event_bus.py's handlers: notify and warmup loaded side by side in one process, with warmup's RunTask requests
recorded in <state>/run-task.jsonl (moto keeps no network settings of a task; tests/lab/test_drill.py reads the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.event_bus import RUN_TASK_LOG, LambdaContext, handlers
from spot_redis.events import HOST_READY
from tests.unit import lambda_support as support


def warmup_environment() -> dict[str, str]:
    """What lab/cloud.py's seed gives the functions, in moto: the stack's table, cluster and warm-up task."""
    ecs = support.client("ecs")
    cluster = ecs.create_cluster(clusterName="spot-redis-staging")["cluster"]["clusterArn"]
    task_definition = ecs.register_task_definition(
        family="spot-redis-staging-warmup",
        networkMode="bridge",  # as lab/cloud.py registers it: moto 5.2.5 cannot make an awsvpc task's interface
        containerDefinitions=[{"name": "warmup", "image": "warmup:latest", "essential": True, "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    return {
        "STACK_NAME": support.STACK,
        "IDEMPOTENCY_TABLE": support.make_idempotency_table(),
        "CLUSTER_ARN": cluster,
        "TASK_DEFINITION_ARN": task_definition,
        "SUBNET_IDS": "subnet-0a1b2c3d4e5f60001",
        "SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60001",
        "ASSIGN_PUBLIC_IP": "ENABLED",
        "WORK_HOURS": "",
    }


def host_ready_empty(instance_id: str) -> dict[str, Any]:
    detail = {"instance-id": instance_id, "stack": support.STACK, "dataset": "empty"}
    return support.custom_event(HOST_READY, detail)


def test_both_functions_load_side_by_side_and_run_task_is_recorded(tmp_path: Path, monkeypatch: Any) -> None:
    with support.aws():
        for name, value in warmup_environment().items():
            monkeypatch.setenv(name, value)
        functions = handlers(tmp_path)
        assert set(functions) == {"notify", "warmup"}
        assert functions["notify"].__module__ != functions["warmup"].__module__

        result = functions["warmup"](host_ready_empty(support.run_instance()), LambdaContext("spot-redis-warmup"))

    assert result["action"] == "started", result
    [request] = [json.loads(line) for line in (tmp_path / RUN_TASK_LOG).read_text().splitlines()]
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-0a1b2c3d4e5f60001"],
        "securityGroups": ["sg-0a1b2c3d4e5f60001"],
        "assignPublicIp": "ENABLED",
    }
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
