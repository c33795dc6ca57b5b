"""The lab's stand-in for EventBridge invoking the stack's Lambdas: the real handlers, against the local AWS API.

    python3 lab/event_bus.py --listen=<the AWS API's address:port> --state=<.lab>

The local EventBridge (moto) routes each event by the patterns of infra/alerting.py's rules (lab/cloud.py's
lambda_rules) to one queue per function. This daemon takes each event from its function's queue and gives it to the
real handler (lambdas/<function>/app.py) twice: EventBridge delivers at least once, and the functions must turn a
duplicate into nothing. The functions run with the settings the stack would give them, the local AWS API as their
endpoint, and the lab's Slack stand-in as the webhook. An event a handler raised on stays in the queue and is given
again later, as Lambda retries an asynchronous invocation.

The warm-up function's RunTask requests are kept in <state>/run-task.jsonl (moto does not keep a task's network
settings).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import cloud  # noqa: E402

DELIVERIES = 2  # each event, twice
POLL_PAUSE_S = 0.5
RUN_TASK_LOG = "run-task.jsonl"


@dataclass
class LambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str
    remaining_ms: int = 60_000
    memory_limit_in_mb: int = 256
    aws_request_id: str = "lab"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{cloud.REGION}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def function_environment(account: cloud.Account, state: Path) -> dict[str, str]:
    return {
        **account.lambdas,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": cloud.REGION,
        "AWS_DEFAULT_REGION": cloud.REGION,
        "AWS_ENDPOINT_URL": cloud.AWS_API_URL,
        "SSL_CERT_FILE": str(state / "tls" / "ca.pem"),  # the Slack stand-in's certificate is the lab CA's
        "POWERTOOLS_SERVICE_NAME": f"spot-redis-{cloud.STACK}",
    }


def load_function(name: str) -> ModuleType:
    """lambdas/<name>/app.py, importable beside the other function (both are `app` in their own zips)."""
    for folder in (REPO / "lambdas", REPO / "lambdas" / name):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"lab_lambda_{name}", REPO / "lambdas" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class RecordingEcs:
    """The ECS client, keeping each RunTask request in a file."""

    def __init__(self, client: Any, log: Path):
        self._client = client
        self._log = log

    def run_task(self, **request: Any) -> dict[str, Any]:
        with self._log.open("a") as handle:
            handle.write(json.dumps(request) + "\n")
        return self._client.run_task(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def handlers(state: Path) -> dict[str, Any]:
    """Both functions, loaded side by side. They share lambdas/common (one `common` package in this process), so the
    ECS client their runtime hands out is replaced once, by one that records RunTask (notify never calls ECS)."""
    notify = load_function("notify")
    warmup = load_function("warmup")
    from common.runtime import clients  # importable once load_function put lambdas/ on sys.path

    clients.set("ecs", RecordingEcs(clients.get("ecs"), state / RUN_TASK_LOG))
    return {"notify": notify.handler, "warmup": warmup.handler}


def deliver(sqs, function: str, queue_url: str, handler) -> int:
    """Give every waiting event to the handler (DELIVERIES times); returns how many events were received."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    for message in messages:
        event = json.loads(message["Body"])
        try:
            results = [handler(event, LambdaContext(f"spot-redis-{cloud.STACK}-{function}")) for _ in range(DELIVERIES)]
        except Exception as error:  # Lambda would retry it: leave it in the queue
            print(f"event bus: {function} failed on {event.get('detail-type')!r}: {error!r}", flush=True)
            continue
        print(f"event bus: {function} <- {event.get('detail-type')!r}: {results}", flush=True)
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="the local AWS API it follows (host:port)")
    parser.add_argument("--state", type=Path, required=True, help="the lab's state folder (.lab)")
    args = parser.parse_args()
    account = None
    while account is None or not account.lambda_queues:
        account = cloud.Account.load(args.state / "aws.json")
        time.sleep(POLL_PAUSE_S)
    os.environ.update(function_environment(account, args.state))
    functions = handlers(args.state)
    sqs = cloud.clients()["sqs"]
    print(f"event bus: delivering to {', '.join(functions)} from {args.listen}", flush=True)
    while True:
        for function, queue_url in account.lambda_queues.items():
            try:
                deliver(sqs, function, queue_url, functions[function])
            except Exception as error:  # the API restarting, say: try again
                print(f"event bus: {error!r}", flush=True)
        time.sleep(POLL_PAUSE_S)


if __name__ == "__main__":
    main()
