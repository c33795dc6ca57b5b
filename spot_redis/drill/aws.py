"""The interruption drill against a real stack: the stack's FIS experiment template sends its Spot host a real
interruption notice while the drill's writer writes through the real endpoint; prints what the lab drill prints.

    python -m spot_redis.drill.aws --stack-outputs outputs.json --resolve fixed:127.0.0.1 --port 16379
    python -m spot_redis.drill.aws --template-id EXT... --group-name spot-redis-staging-redis --region REGION \\
        --resolve dns:redis.staging.internal

outputs.json is `pulumi stack output --json`. --resolve is the writer's (spot_redis/drill/writer.py): `dns:NAME` from
inside the VPC, `fixed:127.0.0.1` through a Session Manager port forward that follows the name (README, "The drill
on a real stack"). The password comes from SPOT_REDIS_DRILL_PASSWORD, or else from the stack's SSM parameter; it is
never printed. AWS calls use the operator's credentials (the default chain, e.g. AWS_PROFILE).

The flow: check the template and that the group's one host is the stack's only running instance; start the writer
and wait for its first acknowledged write; start the experiment (the interruption time); wait, at most 15 minutes,
for the data volume to leave the old host, a new host in service and the first write acknowledged after that
(through a new address, when --resolve follows the name); stop the writer; count the acknowledged keys missing on
the replacement. Times are this machine's clock, from the moment the experiment was started (the notice follows
within seconds); the volume is polled every 2 s, so drain_s may be up to 2 s late.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spot_redis.drill import resp
from spot_redis.drill.report import Ack, DrillReport, loss_window_s, read_acks, rto_s
from spot_redis.drill.writer import COMMAND_TIMEOUT_S, PASSWORD_ENV, CachedName, missing, resolver, write
from spot_redis.events import STACK_TAG

VARIANT = "fis-notice"
# The app user's password, under the stack's parameter prefix (a key of spot_redis.agent.settings.SECRET_PARAMETERS).
APP_PASSWORD = "redis/app-password"  # noqa: S105 - a parameter's name, not a password
DATA_VOLUME_TAG = "spot-redis:volume"  # infra/storage.py VOLUME_TAG: the data volume's, not the root disk's
TAKEOVER_TIMEOUT_S = 15 * 60
FIRST_WRITE_TIMEOUT_S = 30.0
POLL_S = 2.0
UNSUCCESSFUL_STATES = ("failed", "stopping", "stopped", "cancelled")
SLACK_NOTE = "(this command does not read Slack: the team's channel shows what notify said)"


class DrillError(Exception):
    """Why the drill cannot go on, in one line an operator can act on."""


@dataclass(frozen=True)
class Target:
    """The stack's resources the drill uses: from `pulumi stack output --json`, or given one by one."""

    template_id: str
    group_name: str
    volume_id: str | None = None
    cluster_name: str | None = None
    password_parameter: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """How this machine reaches Redis: the writer's --resolve, the port and the ACL user."""

    resolve: str
    port: int = 6379
    user: str = "app"
    region: str | None = None

    @property
    def follows_the_name(self) -> bool:
        """A new host shows as a new address; through `fixed:` (a port forward) every write has the same one."""
        return not self.resolve.startswith("fixed:")

    def resolver(self) -> Callable[[], str | None]:
        return resolver(self.resolve, self.port, self.region)


@dataclass(frozen=True)
class Host:
    """The stack's Spot host before the drill."""

    stack: str
    instance_id: str
    volume_id: str


@dataclass(frozen=True)
class Replacement:
    instance_id: str
    released_at: float  # when the drill saw the data volume leave the old host
    first_ack: Ack  # the first write the replacement acknowledged


@dataclass
class Takeover:
    """What the drill has seen after the notice, poll by poll."""

    released_at: float | None = None
    new_instance: str | None = None  # an instance of the group, in service, that is not the old host
    first_ack: Ack | None = None

    def replacement(self) -> Replacement | None:
        if self.released_at is None or self.new_instance is None or self.first_ack is None:
            return None
        return Replacement(self.new_instance, self.released_at, self.first_ack)

    def missing_parts(self) -> str:
        waiting = {
            "the data volume to leave the old host": self.released_at,
            "a new instance in service in the group": self.new_instance,
            "a write acknowledged by the replacement": self.first_ack,
        }
        return ", ".join(what for what, seen in waiting.items() if seen is None)


@dataclass
class Clients:
    autoscaling: Any
    ec2: Any
    fis: Any
    ssm: Any
    ecs: Any

    @classmethod
    def for_region(cls, region: str | None) -> Clients:
        import boto3

        session = boto3.session.Session(region_name=region)
        return cls(*(session.client(name) for name in ("autoscaling", "ec2", "fis", "ssm", "ecs")))


class Writer(Protocol):
    error: BaseException | None

    def stop(self) -> None: ...


class BackgroundWriter:
    """The drill's writer (spot_redis.drill.writer.write) in a thread of this process, logging to a file."""

    def __init__(self, endpoint: Endpoint, password: str, prefix: str, log_path: Path):
        self.error: BaseException | None = None
        self._stop = threading.Event()
        name = CachedName(endpoint.resolver())
        self._thread = threading.Thread(
            target=self._run, args=(name, endpoint, password, prefix, log_path), name="drill-writer", daemon=True
        )
        self._thread.start()

    def _run(self, name: CachedName, endpoint: Endpoint, password: str, prefix: str, log_path: Path) -> None:
        try:
            with log_path.open("a") as log:
                write(name, port=endpoint.port, user=endpoint.user, password=password, prefix=prefix, log=log,
                      should_stop=self._stop.is_set)  # fmt: skip
        except Exception as error:  # kept for the drill to report: a thread's exception is otherwise only printed
            self.error = error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5 * COMMAND_TIMEOUT_S)


def check_writer(writer: Writer) -> None:
    if writer.error is not None:
        raise DrillError(f"the writer stopped: {type(writer.error).__name__}: {writer.error}")


def login_to_redis(endpoint: Endpoint, password: str) -> resp.Connection:
    address = endpoint.resolver()()
    if address is None:
        raise OSError(f"{endpoint.resolve} gives no address")
    return resp.login(address, endpoint.port, endpoint.user, password, 5 * COMMAND_TIMEOUT_S)


# --- the stack, read through the AWS APIs ----------------------------------------------------------------------


def check_template(fis: Any, template_id: str) -> None:
    try:
        fis.get_experiment_template(id=template_id)
    except fis.exceptions.ResourceNotFoundException:
        raise DrillError(
            f"experiment template {template_id} not found in this region (wrong --region, or not deployed yet)"
        ) from None


def group_stack_and_hosts(autoscaling: Any, group_name: str) -> tuple[str, list[str]]:
    """The stack the group belongs to (its stack tag) and its instances in service."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        raise DrillError(f"no Auto Scaling group {group_name!r} in this region")
    group = groups[0]
    stack = next((tag["Value"] for tag in group.get("Tags", []) if tag["Key"] == STACK_TAG), None)
    if stack is None:
        raise DrillError(f"the group {group_name!r} has no {STACK_TAG} tag: not a spot-redis group")
    in_service = [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]
    return stack, in_service


def running_stack_instances(ec2: Any, stack: str) -> list[str]:
    filters = [{"Name": f"tag:{STACK_TAG}", "Values": [stack]}, {"Name": "instance-state-name", "Values": ["running"]}]
    reservations = ec2.describe_instances(Filters=filters)["Reservations"]
    return sorted(instance["InstanceId"] for r in reservations for instance in r["Instances"])


def find_data_volume(ec2: Any, stack: str) -> str:
    filters = [{"Name": f"tag:{STACK_TAG}", "Values": [stack]}, {"Name": "tag-key", "Values": [DATA_VOLUME_TAG]}]
    volumes = ec2.describe_volumes(Filters=filters)["Volumes"]
    if len(volumes) != 1:
        raise DrillError(f"expected one data volume of stack {stack} (tag {DATA_VOLUME_TAG}), found {len(volumes)}")
    return volumes[0]["VolumeId"]


def volume_left(ec2: Any, volume_id: str, instance_id: str) -> bool:
    """Whether the volume is no longer attached to the instance (available, or attached to another)."""
    (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    return not any(a["InstanceId"] == instance_id for a in volume.get("Attachments", []) if a["State"] != "detached")


def app_password(ssm: Any, parameter: str, environ: dict[str, str]) -> str:
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    try:
        return ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        raise DrillError(f"no SSM parameter {parameter}: set {PASSWORD_ENV} or give --stack-outputs") from None


def warmup_tasks_started(ecs: Any, cluster: str | None, instance_id: str) -> int:
    """Warm-up tasks the replacement's boot started (the warmup Lambda sets startedBy to the instance id)."""
    if not cluster:
        return 0
    tasks = set()
    for status in ("RUNNING", "STOPPED"):
        tasks.update(ecs.list_tasks(cluster=cluster, startedBy=instance_id, desiredStatus=status)["taskArns"])
    return len(tasks)


def first_replacement_ack(acks: Iterable[Ack], released_at: float, old_address: str | None) -> Ack | None:
    """The first write acknowledged once the old host had let go of the volume (its Redis had stopped before);
    through a name, also from another address than the old host's."""
    after = [a for a in acks if a.at >= released_at and a.address != old_address]
    return min(after, key=lambda a: a.at, default=None)


# --- the drill ---------------------------------------------------------------------------------------------------


@dataclass
class Drill:
    clients: Clients
    target: Target
    endpoint: Endpoint
    log_path: Path
    prefix: str
    environ: dict[str, str]
    start_writer: Callable[[Endpoint, str, str, Path], Writer] = BackgroundWriter
    connect: Callable[[Endpoint, str], Any] = login_to_redis
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = lambda line: print(f"drill: {line}", file=sys.stderr)
    timeout_s: float = TAKEOVER_TIMEOUT_S
    poll_s: float = POLL_S

    def run(self) -> DrillReport:
        host = self.preflight()
        password = app_password(self.clients.ssm, self.password_parameter(host.stack), self.environ)
        self.say(f"host {host.instance_id}, data volume {host.volume_id}; writing keys {self.prefix}:N")
        writer = self.start_writer(self.endpoint, password, self.prefix, self.log_path)
        try:
            old_address = self.wait_for_first_write(writer)
            experiment_id, interrupted_at = self.interrupt()
            replacement = self.wait_for_takeover(writer, host, experiment_id, interrupted_at, old_address)
        finally:
            writer.stop()
        return self.report(host, replacement, interrupted_at, password)

    def preflight(self) -> Host:
        check_template(self.clients.fis, self.target.template_id)
        stack, hosts = group_stack_and_hosts(self.clients.autoscaling, self.target.group_name)
        if len(hosts) != 1:
            raise DrillError(
                f"the group {self.target.group_name} has {len(hosts)} instances in service, not one: start the host "
                "(aws autoscaling set-desired-capacity ... --desired-capacity 1) and wait until Redis answers"
            )
        running = running_stack_instances(self.clients.ec2, stack)
        if running != hosts:
            # The template picks one running instance with the stack tag: it must be the group's host.
            raise DrillError(f"{', '.join(running)} of stack {stack} are running: wait until only the host is")
        volume_id = self.target.volume_id or find_data_volume(self.clients.ec2, stack)
        return Host(stack=stack, instance_id=hosts[0], volume_id=volume_id)

    def password_parameter(self, stack: str) -> str:
        return self.target.password_parameter or f"/spot-redis/{stack}/{APP_PASSWORD}"

    def wait_for_first_write(self, writer: Writer) -> str:
        """The address of the old host's first acknowledged write (as the writer resolved it)."""
        deadline = self.clock() + FIRST_WRITE_TIMEOUT_S
        while not (acks := self.acks()):
            check_writer(writer)
            if self.clock() >= deadline:
                raise DrillError(
                    f"no write acknowledged through {self.endpoint.resolve} port {self.endpoint.port} in "
                    f"{FIRST_WRITE_TIMEOUT_S:.0f} s: is Redis reachable from here (port forward up, right user)?"
                )
            self.sleep(0.5)
        return acks[0].address

    def interrupt(self) -> tuple[str, float]:
        experiment = self.clients.fis.start_experiment(
            experimentTemplateId=self.target.template_id, clientToken=str(uuid.uuid4())
        )["experiment"]
        interrupted_at = self.clock()
        self.say(f"experiment {experiment['id']} started: the notice is on its way")
        return experiment["id"], interrupted_at

    def wait_for_takeover(
        self, writer: Writer, host: Host, experiment_id: str, interrupted_at: float, old_address: str
    ) -> Replacement:
        takeover = Takeover()
        deadline = interrupted_at + self.timeout_s
        while True:
            check_writer(writer)
            self.check_experiment(experiment_id)
            self.observe(takeover, host, old_address)
            if replacement := takeover.replacement():
                return replacement
            if self.clock() >= deadline:
                raise DrillError(
                    f"after {self.timeout_s / 60:.0f} min, still waiting for {takeover.missing_parts()} "
                    f"(see `aws fis get-experiment --id {experiment_id}` and the stack's drill log group)"
                )
            self.sleep(self.poll_s)

    def check_experiment(self, experiment_id: str) -> None:
        state = self.clients.fis.get_experiment(id=experiment_id)["experiment"]["state"]
        if state["status"] in UNSUCCESSFUL_STATES:
            raise DrillError(f"experiment {experiment_id} {state['status']}: {state.get('reason', 'no reason given')}")

    def observe(self, takeover: Takeover, host: Host, old_address: str) -> None:
        if takeover.released_at is None and volume_left(self.clients.ec2, host.volume_id, host.instance_id):
            takeover.released_at = self.clock()
            self.say(f"the data volume left {host.instance_id}")
        _, in_service = group_stack_and_hosts(self.clients.autoscaling, self.target.group_name)
        replacement = next((i for i in in_service if i != host.instance_id), None)
        if replacement and replacement != takeover.new_instance:
            self.say(f"{replacement} is in service in the group")
        takeover.new_instance = replacement or takeover.new_instance
        if takeover.released_at is not None and takeover.first_ack is None:
            old = old_address if self.endpoint.follows_the_name else None
            takeover.first_ack = first_replacement_ack(self.acks(), takeover.released_at, old)

    def report(self, host: Host, replacement: Replacement, interrupted_at: float, password: str) -> DrillReport:
        acks = self.acks()
        lost = self.count_missing(acks, password)
        # Through `fixed:` every write has the same address: the replacement's are those from its first one on.
        replacement_acks = [a for a in acks if a.at >= replacement.first_ack.at]
        return DrillReport(
            variant=VARIANT,
            old_host=host.instance_id,
            new_host=replacement.instance_id,
            acked_writes=len(acks),
            lost_writes=len(lost),
            loss_window_s=loss_window_s(acks, lost),
            drain_s=round(replacement.released_at - interrupted_at, 2),
            rto_s=rto_s(replacement_acks, interrupted_at, replacement.first_ack.address),
            dataset=None,  # the replacement says it in its "Redis Host Ready" event, which only the Lambdas receive
            warmup_tasks_started=warmup_tasks_started(
                self.clients.ecs, self.target.cluster_name, replacement.instance_id
            ),
            slack_titles=[],  # the team reads its Slack channel itself
        )

    def count_missing(self, acks: list[Ack], password: str) -> set[int]:
        try:
            connection = self.connect(self.endpoint, password)
        except (OSError, resp.RedisReplyError) as error:
            raise DrillError(f"cannot reach the replacement to count the keys: {error}") from None
        try:
            return missing(connection, self.prefix, [a.seq for a in acks])
        finally:
            connection.close()

    def acks(self) -> list[Ack]:
        return read_acks(self.log_path) if self.log_path.exists() else []


# --- the command -------------------------------------------------------------------------------------------------


def read_outputs(path: Path) -> dict[str, Any]:
    try:
        outputs = json.loads(path.read_text())
    except OSError as error:
        raise DrillError(f"cannot read --stack-outputs {path}: {error.strerror}") from None
    except ValueError:
        raise DrillError(f"--stack-outputs {path} is not JSON (use `pulumi stack output --json`)") from None
    if not isinstance(outputs, dict):
        raise DrillError(f"--stack-outputs {path} is not a JSON object (use `pulumi stack output --json`)")
    return outputs


def target_from(args: argparse.Namespace) -> Target:
    """The flags, completed by the stack's outputs (a flag wins over an output)."""
    outputs = read_outputs(args.stack_outputs) if args.stack_outputs else {}
    template_id = args.template_id or outputs.get("drillExperimentTemplateId")
    group_name = args.group_name or outputs.get("asgName")
    if not template_id:
        raise DrillError("which experiment? give --template-id, or --stack-outputs with drillExperimentTemplateId")
    if not group_name:
        raise DrillError("which Auto Scaling group? give --group-name, or --stack-outputs with asgName")
    parameter_names = outputs.get("parameterNames")
    return Target(
        template_id=template_id,
        group_name=group_name,
        volume_id=args.volume_id or outputs.get("dataVolumeId"),
        cluster_name=args.cluster or outputs.get("clusterName"),
        password_parameter=parameter_names.get("redis-app-password") if isinstance(parameter_names, dict) else None,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spot_redis.drill.aws", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stack-outputs", type=Path, help="`pulumi stack output --json` of the stack")
    parser.add_argument("--template-id", help="the drill's FIS experiment template (output drillExperimentTemplateId)")
    parser.add_argument("--group-name", help="the host's Auto Scaling group (output asgName)")
    parser.add_argument("--volume-id", help="the data volume (output dataVolumeId; else found by its tags)")
    parser.add_argument("--cluster", help="the ECS cluster of the warm-up (output clusterName)")
    parser.add_argument("--region", help="the stack's region (else AWS_REGION or the profile's)")
    parser.add_argument("--resolve", required=True, help="dns:NAME, fixed:ADDRESS or cloudmap:NAMESPACE/SERVICE")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--user", default="app")
    parser.add_argument("--log", type=Path, help="where acknowledged writes are logged (default drill-<run>.jsonl)")
    return parser.parse_args(argv)


def run_id(clock: Callable[[], float] = time.time) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock())) + "-" + uuid.uuid4().hex[:6]


def main(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    args = parse_args(argv)
    run = run_id()
    try:
        endpoint = Endpoint(args.resolve, args.port, args.user, args.region)
        endpoint.resolver()  # a malformed --resolve stops here, before anything is touched
        drill = Drill(
            clients=clients or Clients.for_region(args.region),
            target=target_from(args),
            endpoint=endpoint,
            log_path=args.log or Path(f"drill-{run}.jsonl"),
            prefix=f"drill:{run}",
            environ=dict(os.environ),
        )
        report = drill.run()
    except (DrillError, ValueError) as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("interrupted: the writer is stopped; an experiment already started goes on", code=130)
    except Exception as error:
        return fail(one_line(error))
    print_report(report)
    return 0


def print_report(report: DrillReport) -> None:
    """The table, then the JSON line last (what a script reads)."""
    print(report.table())
    print(SLACK_NOTE)
    print(report.json_line())


def one_line(error: Exception) -> str:
    """What went wrong, in one line: the AWS SDK's errors said plainly, anything else by its type and message."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE (or log in with `aws sso login`) and try again"
    if isinstance(error, NoRegionError):
        return "no AWS region: give --region or set AWS_REGION"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS: {error}"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}"
    if isinstance(error, OSError):
        return f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
    return f"unexpected {type(error).__name__}: {error}"


def fail(message: str, code: int = 1) -> int:
    print(f"drill: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
