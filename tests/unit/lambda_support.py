"""Helpers for the Lambda unit tests (notify, warmup): no network beyond 127.0.0.1, a few seconds in all.

- :func:`load_lambda` imports ``lambdas/<name>/app.py`` under a unique module name, with ``lambdas/`` on sys.path so
  that ``from common... import`` works as in the deployment package.
- :func:`aws` (context manager): moto with fake credentials and region, and the stack's environment variables.
- :class:`SlackStandIn` (context manager): a local HTTP server answering a script of 200/404/500/"hang".
- :func:`load_event` reads a sample from tests/unit/events; :func:`custom_event` builds one of the custom events of
  spot_redis.events; :class:`FakeContext` is a Lambda context.
- :func:`capture_logs` points a Powertools logger at a buffer (it writes JSON lines to the stdout it saw at creation).
- :func:`make_group` makes the stack's Auto Scaling group in moto; :class:`AwsUpdateSemantics` and
  :class:`RecordingEvents` wrap moto's clients (lambdas/capacity's world).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from spot_redis.events import SOURCE, EventKind

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = REPO / "lambdas"
EVENTS = Path(__file__).resolve().parent / "events"
REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
STACK = "staging"

if str(LAMBDAS) not in sys.path:
    sys.path.insert(0, str(LAMBDAS))

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_LAMBDA_FUNCTION_NAME": "spot-redis-test",
    "POWERTOOLS_SERVICE_NAME": "spot-redis-test",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",  # loading them costs ~0.2 s per test; run_instances takes any AMI id
}


def load_lambda(name: str) -> ModuleType:
    """``lambdas/<name>/app.py`` as module ``spot_redis_lambda_<name>`` (fresh import each call)."""
    module_name = f"spot_redis_lambda_{name}"
    spec = importlib.util.spec_from_file_location(module_name, LAMBDAS / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """The sample event ``tests/unit/events/<name>.json``; ``overrides`` replace top-level keys, ``detail`` merges."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    detail = overrides.pop("detail", None)
    event.update(overrides)
    if detail is not None:
        event["detail"] = {**event["detail"], **detail}
    return event


def custom_event(
    kind: EventKind | str, detail: dict[str, Any], event_id: str = "c0ffee00-0000-0000-0000-000000000001"
) -> dict[str, Any]:
    """A custom event (source spot_redis.events.SOURCE) of ``kind`` (or of a detail-type outside the contract), as
    EventBridge delivers what the host or the warmup function sends; ``detail`` is not checked against the contract
    (the tests of malformed events need that), but its keys must be the kind's: a test cannot misspell one."""
    if isinstance(kind, EventKind):
        unknown = set(detail) - set(kind.keys)
        assert not unknown, f"{kind.detail_type} has no detail keys {unknown} in spot_redis.events"
    return {
        "version": "0",
        "id": event_id,
        "detail-type": kind.detail_type if isinstance(kind, EventKind) else kind,
        "source": SOURCE,
        "account": ACCOUNT,
        "time": "2026-11-20T05:20:00Z",
        "region": REGION,
        "resources": [],
        "detail": copy.deepcopy(detail),
    }


class ManualClock:
    """A monotonic clock that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeContext:
    """A Lambda context: the fields Powertools reads, and a remaining time (ms) that tests can set."""

    remaining_ms: int = 60_000
    function_name: str = "spot-redis-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:spot-redis-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


_session: Any = None


def client(service: str) -> Any:
    """A boto3 client from one session kept for the whole test run: botocore then parses each service model once
    (moto resets boto3's default session at every start, and parsing the EC2 model takes about a second)."""
    global _session
    import boto3

    if _session is None:
        _session = boto3.session.Session(region_name=REGION)
    return _session.client(service, region_name=REGION)  # type: ignore[call-overload]


@contextlib.contextmanager
def aws(env: dict[str, str] | None = None) -> Iterator[None]:
    """moto for every service, fake credentials, and ``env`` (the function's settings) in os.environ.

    The Lambdas' ``common.runtime.clients`` are reset and made from the shared session of :func:`client`.
    """
    from common.runtime import clients
    from moto import mock_aws

    with mock.patch.dict(os.environ, {**FAKE_AWS_ENV, **(env or {})}), mock_aws():
        client("sts")  # the shared session exists, with the fake credentials
        clients.reset()
        clients.session = _session
        try:
            yield
        finally:
            clients.reset()
            clients.session = None


def make_idempotency_table(name: str = "spot-redis-idempotency") -> str:
    """The table as infra/alerting.py makes it: partition key ``id``, TTL ``expiration``. Call inside :func:`aws`."""
    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return name


def run_instance(stack: str | None = STACK) -> str:
    """A moto instance, tagged ``spot-redis:stack=<stack>`` unless ``stack`` is None. Call inside :func:`aws`."""
    ec2 = client("ec2")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "spot-redis:stack", "Value": stack}]}] if stack else []
    response = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t4g.small", TagSpecifications=tags
    )
    return response["Instances"][0]["InstanceId"]


def make_volume(stack: str | None = STACK) -> str:
    """A moto EBS volume, tagged with the stack unless ``stack`` is None. Call inside :func:`aws`."""
    ec2 = client("ec2")
    tags = [{"ResourceType": "volume", "Tags": [{"Key": "spot-redis:stack", "Value": stack}]}] if stack else []
    return ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, TagSpecifications=tags)["VolumeId"]


FAILED_EVENTS_ALARM_EVENT = "own/cloudwatch-alarm-failed-events"


def make_alarm(name: str, stack: str | None = STACK) -> str:
    """A moto CloudWatch alarm on an SQS queue's visible messages, tagged with the stack unless ``stack`` is None;
    returns its ARN. Call inside :func:`aws`."""
    cloudwatch = client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": f"{name}-queue"}],
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": "spot-redis:stack", "Value": stack}] if stack else [],
    )
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]


def alarm_event(alarm_arn: str, **state: Any) -> dict[str, Any]:
    """The failed-events alarm's state change for ``alarm_arn``; ``state`` replaces keys of detail.state."""
    event = load_event(FAILED_EVENTS_ALARM_EVENT, resources=[alarm_arn])
    event["detail"]["alarmName"] = alarm_arn.rsplit(":", 1)[1]
    event["detail"]["state"] = {**event["detail"]["state"], **state}
    return event


BROKEN_ANSWERS = {
    # The connection closes in the middle of the headers: http.client raises IncompleteRead (not an OSError).
    "cut-headers": b"HTTP/1.1 200 OK\r\nContent-Length: 2",
    # Not HTTP at all: http.client raises BadStatusLine (not an OSError either).
    "bad-status": b"SSH-2.0-OpenSSH_9.6\r\n",
}


@dataclass
class SlackStandIn:
    """A local Slack webhook: answers each POST with the next item of ``script`` (the last one repeats).

    Items: an HTTP status (200, 404, 500, ...), ``"hang"`` (no answer until the stand-in closes, so the client's
    timeout always fires first, however slow the machine) or a broken answer of :data:`BROKEN_ANSWERS` (then the
    connection is closed). ``posts`` holds the JSON bodies received, answered or not; ``url`` carries a
    secret-looking path, as a real webhook does.
    """

    script: list[int | str] = field(default_factory=lambda: [200])
    secret: str = "T0SECRET/B0SECRET/XyZsEcReTtOkEn123"  # noqa: S105 - a fake webhook path
    posts: list[dict[str, Any]] = field(default_factory=list)

    def __enter__(self) -> SlackStandIn:
        stand_in = self
        self._lock = threading.Lock()
        self._served = 0
        self._closing = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with stand_in._lock:
                    stand_in.posts.append(json.loads(body or b"{}"))
                    answer = stand_in.script[min(stand_in._served, len(stand_in.script) - 1)]
                    stand_in._served += 1
                if answer == "hang":
                    stand_in._closing.wait(timeout=60)
                    return
                if answer in BROKEN_ANSWERS:
                    self.wfile.write(BROKEN_ANSWERS[str(answer)])
                    self.close_connection = True
                    return
                status = int(answer)
                text = b"ok" if status == 200 else b"no_service" if status == 404 else b"internal_error"
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/services/{self.secret}"


def put_webhook_parameter(name: str, url: str) -> None:
    """The Slack webhook as an SSM SecureString. Call inside :func:`aws`."""
    client("ssm").put_parameter(Name=name, Value=url, Type="SecureString")


def fallback_topic_with_queue(name: str = "spot-redis-fallback") -> tuple[str, str]:
    """An SNS topic and an SQS queue subscribed to it (raw delivery off); returns (topic ARN, queue URL)."""
    sns = client("sns")
    sqs = client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{name}-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue


def cloudmap_service(vpc_id: str) -> str:
    """The stack's Cloud Map service `redis` (A records, TTL 10 s) in a private DNS namespace of the VPC."""
    cloudmap = client("servicediscovery")
    cloudmap.create_private_dns_namespace(Name="spot-redis.internal", Vpc=vpc_id)
    namespace_id = cloudmap.list_namespaces()["Namespaces"][0]["Id"]
    return cloudmap.create_service(
        Name="redis", NamespaceId=namespace_id, DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]}
    )["Service"]["Id"]


def own_events_queue() -> str:
    """An SQS queue that an EventBridge rule fills with every spot-redis event of the default bus (moto cannot
    deliver to a Lambda target); returns its URL."""
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName="own-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client("events")
    events.put_rule(Name="spot-redis-own", EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="spot-redis-own", Targets=[{"Id": "probe", "Arn": queue_arn}])
    return queue_url


def queue_messages(queue_url: str) -> list[dict[str, Any]]:
    """The SNS notifications (Subject, Message, ...) waiting in the probe queue."""
    sqs = client("sqs")
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(message["Body"]) for message in response.get("Messages", [])]


@contextlib.contextmanager
def capture_logs(logger: Any) -> Iterator[io.StringIO]:
    """Everything a Powertools ``logger`` writes, in a buffer (one JSON object per line)."""
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def log_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


# --- lambdas/notify's world: moto, the Slack stand-in, the fallback topic (shared by the notify and contract tests) --

NOTIFY_PARAM = "/spot-redis/staging/slack-webhook"
NOTIFY_TABLE = "spot-redis-idempotency"


@dataclass
class NotifyEnv:
    """What a notify test sees: the Slack stand-in, the fallback queue, the context and the function's logs."""

    app: ModuleType
    slack: SlackStandIn
    queue: str
    context: FakeContext
    logs: io.StringIO

    def run(self, event: Any) -> dict[str, Any]:
        return self.app.handler(event, self.context)

    def fallback(self) -> list[dict[str, Any]]:
        return queue_messages(self.queue)

    def log_text(self) -> str:
        return self.logs.getvalue()


@contextlib.contextmanager
def notify_env(app: ModuleType, script: list[int | str] | None = None, now: Any = None) -> Iterator[NotifyEnv]:
    """moto with notify's settings, table, webhook parameter and fallback topic; a Slack stand-in answering
    ``script``; fast Slack retries; ``common.runtime.clock`` fixed at ``now`` (when given); logs captured."""
    from common.runtime import clock

    settings = {"STACK_NAME": STACK, "IDEMPOTENCY_TABLE": NOTIFY_TABLE, "SLACK_WEBHOOK_PARAM": NOTIFY_PARAM}
    # A timeout that a loaded CI machine cannot reach on a 200 (0.2 s once did); "hang" answers never, so the
    # timeout tests do not depend on it being short.
    fast = app.SlackPolicy(attempt_timeout=2.0, backoff=0.01, max_attempts=3, reserve=1)
    with (
        aws(settings),
        SlackStandIn(script=script or [200]) as slack,
        mock.patch.object(app, "SLACK", fast),
        mock.patch.object(clock, "fixed", now),
    ):
        make_idempotency_table(NOTIFY_TABLE)
        put_webhook_parameter(NOTIFY_PARAM, slack.url)
        topic, queue = fallback_topic_with_queue()
        os.environ["FALLBACK_TOPIC_ARN"] = topic  # undone by aws()'s patch.dict
        app.reset_caches()
        try:
            with capture_logs(app.logger) as logs:
                yield NotifyEnv(app=app, slack=slack, queue=queue, context=FakeContext(), logs=logs)
        finally:
            app.reset_caches()


# --- lambdas/capacity's world: the stack's Auto Scaling group (shared by the capacity and contract tests) ------------

GROUP = "spot-redis-staging"
GROUP_TYPES = ["t4g.small", "t4g.medium", "m6g.medium", "m7g.medium"]  # Pulumi.example.yaml's
GROUP_DISTRIBUTION = {  # what infra/compute.py asks for: 100% Spot, price-capacity-optimized
    "OnDemandBaseCapacity": 0,
    "OnDemandPercentageAboveBaseCapacity": 0,
    "SpotAllocationStrategy": "price-capacity-optimized",
}
NO_SPOT_CAPACITY_EVENT = "own/autoscaling-launch-unsuccessful-no-spot-capacity"
TERMINATED_EVENT = "own/autoscaling-terminate-successful"


class AwsUpdateSemantics:
    """moto's Auto Scaling client, updating a mixed instances policy as AWS does, and keeping each update request.

    moto 5.2.5 replaces a group's whole mixed instances policy on UpdateAutoScalingGroup and needs its launch template
    in the request; AWS keeps what the request leaves out (the API reference: the launch template "is not required
    when updating the group")."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates: list[dict[str, Any]] = []

    def update_auto_scaling_group(self, **request: Any) -> Any:
        self.updates.append(json.loads(json.dumps(request)))
        given = request.get("MixedInstancesPolicy")
        if given is not None and "LaunchTemplate" not in given:
            (group,) = self.describe_auto_scaling_groups(AutoScalingGroupNames=[request["AutoScalingGroupName"]])[
                "AutoScalingGroups"
            ]
            current = group["MixedInstancesPolicy"]
            specification = current["LaunchTemplate"]["LaunchTemplateSpecification"]
            request["MixedInstancesPolicy"] = {
                "LaunchTemplate": {
                    # moto refuses a specification that names the template by both id and name, as describe shows it
                    "LaunchTemplateSpecification": {
                        "LaunchTemplateId": specification["LaunchTemplateId"],
                        "Version": specification["Version"],
                    },
                    "Overrides": current["LaunchTemplate"]["Overrides"],
                },
                "InstancesDistribution": {**current["InstancesDistribution"], **given.get("InstancesDistribution", {})},
            }
        return self._client.update_auto_scaling_group(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class RecordingEvents:
    """moto's EventBridge client, keeping every entry passed to PutEvents."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.entries: list[dict[str, Any]] = []

    def put_events(self, **request: Any) -> Any:
        self.entries.extend(request["Entries"])
        return self._client.put_events(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def make_group(desired: int = 0, on_demand_base: int = 0, protected: bool = False, name: str = GROUP) -> None:
    """The stack's group as infra/compute.py makes it (one zone, max 1, several types, 100% Spot unless
    ``on_demand_base``). Call inside :func:`aws`."""
    template = client("ec2").create_launch_template(
        LaunchTemplateName=f"{name}-template", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
        NewInstancesProtectedFromScaleIn=protected,
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "$Latest"},
                "Overrides": [{"InstanceType": instance_type} for instance_type in GROUP_TYPES],
            },
            "InstancesDistribution": {**GROUP_DISTRIBUTION, "OnDemandBaseCapacity": on_demand_base},
        },
    )
