"""An interruption drill in the lab: the Redis host is reclaimed while a client writes, a replacement takes over.

    python -m lab drill [--variant notice|hard-kill|lost-disk]      (or: make drill DRILL=<variant>)

Runs on a lab that is up (`python -m lab up`), and leaves it up with the replacement serving (.lab/env's REDIS_HOST
names it). The old host is the Auto Scaling group's instance now (redis-1 or redis-2); the replacement is the other.

- A writer in the allowed client namespace (spot_redis/drill/writer.py) writes keys without pause through the name
  registered in Cloud Map, re-resolved every 10 s as the record's TTL says, and logs every acknowledged write.
- notice: the fake metadata service gives the old host a Spot notice two minutes ahead, and the interruption
  warning AWS would send goes on the local EventBridge. The host's watcher drains (it leaves the group, which makes
  the group launch a replacement). At the notice's time the old host is reclaimed if it still runs.
- hard-kill: no notice; the old host is killed (SIGKILL, as a reclaimed instance whose notice never came); the group
  then replaces the instance it lost.
- lost-disk: as hard-kill, and the data volume is gone: the replacement gets a new, empty one.

The lab's stand-in for the Auto Scaling group (GroupStandIn) boots the replacement when the old instance leaves the
group in the local AWS API, and not before: a new root file system, its metadata, then the stack's user data through
the host agent. The EC2 events AWS itself sends (the warning, the state changes) are built from the samples in
tests/unit/events and put on the local EventBridge, which routes them, with the hosts' own events, to the real
Lambdas (lab/event_bus.py). The drill prints what it measured (spot_redis/drill/report.py) as a table and, last,
as one JSON line; each run's files are kept in .lab/drill/<run>/.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from lab import aws_api, cloud, control, imds, topology, webhook_sink
from lab.control import STATE, log
from spot_redis.drill.report import DrillReport, loss_window_s, read_acks, rto_s
from spot_redis.drill.writer import PASSWORD_ENV

VARIANTS = ("notice", "hard-kill", "lost-disk")
NOTICE_LEAD_S = 120
SAMPLE_EVENTS = control.REPO / "tests/unit/events"
STEADY_WRITES = 400  # acknowledged writes before the interruption: about two seconds
AFTER_RECOVERY_S = 2.0  # the writer keeps writing this long on the replacement
REPLACEMENT_TIMEOUT_S = 600
SLACK_TIMEOUT_S = 60
TICK_S = 0.25


class DrillError(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"drill: {message}")


# --- the old host, the replacement ------------------------------------------------------------------------------


def other_agent_node(name: str) -> topology.Node:
    return next(node for node in topology.NODES if node.agent and node.name != name)


def kill_host(node: topology.Node) -> None:
    """SIGKILL the host's systemd-nspawn and everything in it: no shutdown, no drain, nothing flushed by the host."""
    found = control.nspawn_hosts().get(node.name)
    if found is None:
        return
    nspawn_pid = found[0]
    init_pid = cloud.container_pid(nspawn_pid)
    for pid in (nspawn_pid, init_pid):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{nspawn_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def forget_root_disk(node: topology.Node) -> None:
    """A terminated instance's root volume is deleted with it."""
    shutil.rmtree(control.host_dir(node) / "rootfs", ignore_errors=True)


def boot_replacement(
    node: topology.Node, instance_id: str, account: cloud.Account, events, milestones: dict[str, float]
) -> None:
    """What EC2 does for the instance the group launched: a new root disk, its metadata, a boot, the user data."""
    imds.write_host(STATE / "imds", node.address, **cloud.host_metadata(node, instance_id))
    forget_root_disk(node)
    rootfs = control.ensure_rootfs(node, control.ensure_image())
    control.ensure_netns(node)
    log(f"{node.name}: booting at {node.address} as {instance_id}")
    control.boot(node, rootfs)
    control.write_known_hosts(control.hosts_to_run(account))
    control.wait_until_running(node, time.monotonic() + control.BOOT_TIMEOUT_S)
    milestones["replacement's systemd running"] = time.time()
    events.state_change(instance_id, "running")
    control.boot_through_agent(node, account)
    milestones["replacement's agent boot done"] = time.time()


# --- what AWS itself would have sent --------------------------------------------------------------------------


class AwsEvents:
    """EC2's events, from the samples in tests/unit/events, put on the local EventBridge as AWS would send them."""

    def __init__(self, events_client):
        self.client = events_client

    def _put(self, sample: str, instance_id: str, **detail: str) -> None:
        event = json.loads((SAMPLE_EVENTS / f"{sample}.json").read_text())
        arn = f"arn:aws:ec2:{cloud.REGION}:{event['account']}:instance/{instance_id}"
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Resources": [arn],
            "Detail": json.dumps({**event["detail"], "instance-id": instance_id, **detail}),
            "Time": datetime.now(UTC),
        }
        response = self.client.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            log(f"drill: the local EventBridge refused {event['detail-type']}: {response['Entries']}")

    def spot_warning(self, instance_id: str) -> None:
        self._put("ec2-spot-interruption-warning", instance_id)

    def state_change(self, instance_id: str, state: str) -> None:
        self._put("ec2-state-change-stopping", instance_id, state=state)


# --- the Auto Scaling group's stand-in ----------------------------------------------------------------------------


class GroupStandIn:
    """Does what the group and EC2 would: reclaims the old instance, launches the replacement once the old one has
    left the group (and not before), and watches the data volume. Runs in the drill's thread; the replacement boots
    in a thread of its own."""

    def __init__(self, aws: dict, account: cloud.Account, old: topology.Node, variant: str, events: AwsEvents):
        self.aws, self.account, self.old, self.variant, self.events = aws, account, old, variant, events
        self.old_id = account.instance_of(old.name)
        self.new = other_agent_node(old.name)
        self.new_id: str | None = None
        self.volume_id = next(iter(account.volumes))
        self.volume_free_at: float | None = None
        self.reclaim_at: float | None = None
        self.reclaimed = False
        self.booting: threading.Thread | None = None
        self.boot_error: BaseException | None = None
        self.members_before: set[str] = set()
        self.milestones: dict[str, float] = {}  # what happened when (epoch seconds)

    def interrupt(self) -> float:
        """Start the variant's interruption; returns its time (epoch seconds)."""
        self.members_before = set(self._members())
        if self.old_id not in self.members_before:
            raise DrillError(f"{self.old_id} ({self.old.name}) is not in the group {self.account.group_name}")
        interrupted_at = time.time()
        if self.variant == "notice":
            notice = imds.give_notice(STATE / "imds", self.old.address, in_seconds=NOTICE_LEAD_S)
            self.events.spot_warning(self.old_id)
            self.reclaim_at = datetime.fromisoformat(notice["time"].replace("Z", "+00:00")).timestamp()
            log(f"{self.old.name}: Spot interruption notice, action at {notice['time']}")
            return interrupted_at
        kill_host(self.old)
        log(f"{self.old.name}: killed without notice")
        if self.variant == "lost-disk":
            self.lose_volume()
        self.reclaim(through_group=True)
        return interrupted_at

    def lose_volume(self) -> None:
        """The old data volume is gone; the stack's (a new `pulumi up`) is a new, empty one."""
        ec2 = self.aws["ec2"]
        old_image = self.account.volumes.pop(self.volume_id)
        with contextlib.suppress(Exception):
            ec2.detach_volume(VolumeId=self.volume_id, InstanceId=self.old_id, Force=True)
        ec2.delete_volume(VolumeId=self.volume_id)
        for device in cloud.loop_devices(old_image):
            subprocess.run(["losetup", "--detach", device], check=False)
        Path(old_image).unlink(missing_ok=True)
        volume = ec2.create_volume(
            AvailabilityZone=cloud.ZONE, Size=1, VolumeType="gp3", Encrypted=True,
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "spot-redis:stack", "Value": cloud.STACK}]}],
        )  # fmt: skip
        self.volume_id = volume["VolumeId"]
        image = STATE / "disks" / f"{control.DATA_DISK_PREFIX}{self.volume_id}.img"
        with image.open("wb") as handle:
            handle.truncate(self.old.data_size_mib * 1024 * 1024)
        self.account.volumes[self.volume_id] = str(image)
        for settings in self.account.hosts.values():
            settings["data_volume_id"] = self.volume_id
        self.account.save(STATE / "aws.json")
        log(f"data volume lost; the stack's new volume is {self.volume_id}")

    def reclaim(self, through_group: bool) -> None:
        """The instance is gone: EC2 terminates it (detaching its volume), and the group, if it was still in it,
        launches another."""
        kill_host(self.old)
        self.aws["ec2"].create_tags(Resources=[self.old_id], Tags=[{"Key": aws_api.SPOT_RECLAIM_TAG, "Value": "yes"}])
        if through_group:
            self.aws["autoscaling"].terminate_instance_in_auto_scaling_group(
                InstanceId=self.old_id, ShouldDecrementDesiredCapacity=False
            )
        else:
            self.aws["ec2"].terminate_instances(InstanceIds=[self.old_id])
        for state in ("shutting-down", "terminated"):
            self.events.state_change(self.old_id, state)
        forget_root_disk(self.old)
        self.reclaimed = True
        self.milestones["old instance reclaimed"] = time.time()
        log(f"{self.old.name}: instance {self.old_id} reclaimed")

    def tick(self) -> None:
        now = time.time()
        if self.volume_free_at is None and self._volume_state() == "available":
            self.volume_free_at = now
            self.milestones["data volume free"] = now
        if not self.reclaimed and self.reclaim_at is not None and now >= self.reclaim_at:
            self.reclaim(through_group=self._in_group(self.old_id))
        if self.booting is None:
            members = self._members()
            launched = [member for member in members if member not in self.members_before]
            if self.old_id not in members and launched:
                self.launch(launched[0])

    def launch(self, instance_id: str) -> None:
        self.new_id = instance_id
        self.account.instances[instance_id] = self.new.name
        self.account.hosts[self.new.name] = dict(self.account.hosts[self.old.name])
        self.account.current_host = self.new.name
        self.account.save(STATE / "aws.json")
        self.milestones["replacement launched"] = time.time()
        log(f"the group launched {instance_id}: it boots as {self.new.name}")

        def boot() -> None:
            try:
                boot_replacement(self.new, instance_id, self.account, self.events, self.milestones)
            except BaseException as error:  # reported by the drill's thread
                self.boot_error = error

        self.booting = threading.Thread(target=boot, name="replacement", daemon=True)
        self.booting.start()

    def replacement_booted(self) -> bool:
        if self.boot_error is not None:
            raise DrillError(f"the replacement did not boot: {self.boot_error}")
        return self.booting is not None and not self.booting.is_alive()

    def _members(self) -> list[str]:
        groups = self.aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[self.account.group_name])
        return [i["InstanceId"] for g in groups["AutoScalingGroups"] for i in g["Instances"]]

    def _in_group(self, instance_id: str) -> bool:
        return instance_id in self._members()

    def _volume_state(self) -> str:
        return self.aws["ec2"].describe_volumes(VolumeIds=[self.volume_id])["Volumes"][0]["State"]


# --- the client side ----------------------------------------------------------------------------------------------


def client_python(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess | subprocess.Popen:
    """Python (this one, with the repository on its path) in the allowed client's network namespace, as the app."""
    cmd = ["ip", "netns", "exec", env["LAB_CLIENT_NETNS"], sys.executable, *args]
    process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(control.REPO),
                   PASSWORD_ENV: env["REDIS_APP_PASSWORD"], "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip
    if kwargs.pop("background", False):
        return subprocess.Popen(cmd, env=process_env, cwd=control.REPO, **kwargs)
    return subprocess.run(cmd, env=process_env, cwd=control.REPO, text=True, capture_output=True, check=False)


def start_writer(env: dict[str, str], run_dir: Path, prefix: str) -> subprocess.Popen:
    stderr = (run_dir / "writer.log").open("w")
    return client_python(
        env, "-m", "spot_redis.drill.writer", f"--resolve=cloudmap:{cloud.NAMESPACE}/redis", f"--prefix={prefix}",
        f"--log={run_dir / 'acks.jsonl'}", f"--stop-file={run_dir / 'stop'}", f"--region={cloud.REGION}",
        f"--aws-endpoint-url={cloud.AWS_API_URL}", background=True, stdout=stderr, stderr=subprocess.STDOUT,
    )  # fmt: skip


def check(env: dict[str, str], what: str, address: str, *args: str) -> str:
    result = client_python(env, "-m", "spot_redis.drill.check", what, f"--address={address}", *args)
    if result.returncode != 0:
        raise DrillError(f"spot_redis.drill.check {what} on {address} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def wait_for(what: str, condition, timeout_s: float, every=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise DrillError(f"{what}: not within {timeout_s:.0f} s")
        if every is not None:
            every()
        time.sleep(TICK_S)


# --- the team's view ----------------------------------------------------------------------------------------------


def slack_titles(since_ns: int) -> list[str]:
    """Every Slack message's title since since_ns, in order: the notify function's header, Alertmanager's title."""
    titles = []
    for _, body in webhook_sink.received(STATE / "slack", since_ns):
        blocks = body.get("blocks") or []
        header = next((b["text"]["text"] for b in blocks if b.get("type") == "header"), None)
        titles += [header] if header else [a.get("title", "") for a in body.get("attachments") or []]
    return titles


def expected_titles(variant: str, new_id: str) -> list[str]:
    """Title parts that must reach Slack before the drill reports: the replacement's 'ready' message (and, when the
    data was lost, the warm-up's)."""
    ready = {"notice": f"Redis is back on {new_id}", "hard-kill": f"Redis on {new_id} restarted after a crash",
             "lost-disk": f"Redis on {new_id} started EMPTY"}[variant]  # fmt: skip
    return [ready, f"Cache warm-up started for Redis on {new_id}"] if variant == "lost-disk" else [ready]


# --- the drill ----------------------------------------------------------------------------------------------------


def run(variant: str) -> DrillReport:
    account = cloud.Account.load(STATE / "aws.json")
    if account is None or not account.current_host or not (STATE / "env").exists():
        raise DrillError("the lab is not up: `make lab` (or `python -m lab up`) first")
    old = topology.node(account.current_host)
    if old.name not in control.nspawn_hosts():
        raise DrillError(f"{old.name}, the group's instance, is not running: `python -m lab up` first")
    env, aws = control.read_env(), cloud.clients()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{variant}"
    run_dir = STATE / "drill" / run_id
    run_dir.mkdir(parents=True)
    stand_in = GroupStandIn(aws, account, old, variant, AwsEvents(aws["events"]))
    check(env, "keys", old.address, f"--out={run_dir / 'keys.json'}")
    slack_since = time.time_ns()
    interrupted_at = interrupt_while_writing(stand_in, env, run_dir, prefix=f"drill:{run_id}")
    control.write_env(control.ensure_secrets(), account)
    found = json.loads(check(env, "missing", stand_in.new.address, f"--prefix=drill:{run_id}",
                             f"--acks={run_dir / 'acks.jsonl'}", f"--keys={run_dir / 'keys.json'}"))  # fmt: skip
    wanted = expected_titles(variant, stand_in.new_id)
    wait_for("the team's Slack messages", lambda: all(any(w in t for t in slack_titles(slack_since)) for w in wanted),
             SLACK_TIMEOUT_S)  # fmt: skip
    report = measure(stand_in, read_acks(run_dir / "acks.jsonl"), found, interrupted_at, slack_since)
    (run_dir / "report.json").write_text(report.json_line() + "\n")
    return report


def interrupt_while_writing(stand_in: GroupStandIn, env: dict[str, str], run_dir: Path, prefix: str) -> float:
    """The writer writes from before the interruption until the replacement serves and the old host is gone;
    returns the interruption's time."""
    acks = run_dir / "acks.jsonl"
    writer = start_writer(env, run_dir, prefix)
    try:
        wait_for("the writer's first writes", lambda: acks.exists() and len(read_acks(acks)) >= STEADY_WRITES, 60)
        interrupted_at = stand_in.interrupt()
        served = lambda: any(a.address == stand_in.new.address for a in read_acks(acks))  # noqa: E731
        wait_for("the replacement serving through the name", lambda: stand_in.replacement_booted() and served(),
                 REPLACEMENT_TIMEOUT_S, every=stand_in.tick)  # fmt: skip
        wait_for("the old instance reclaimed", lambda: stand_in.reclaimed, NOTICE_LEAD_S + 30, every=stand_in.tick)
        time.sleep(AFTER_RECOVERY_S)
        return interrupted_at
    finally:
        (run_dir / "stop").touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            writer.wait(timeout=10)
        if writer.poll() is None:
            writer.kill()


def measure(stand_in: GroupStandIn, acks: list, found: dict, interrupted_at: float, slack_since: int) -> DrillReport:
    old, new, new_id = stand_in.old, stand_in.new, stand_in.new_id
    rto = rto_s(acks, interrupted_at, new.address)
    booted = json.loads(control.ssh(new, "cat", "/var/lib/spot-redis/dataset.json").stdout)
    drained = stand_in.variant == "notice" and stand_in.volume_free_at is not None
    tasks = stand_in.aws["ecs"].list_tasks(cluster=stand_in.account.lambdas["CLUSTER_ARN"], startedBy=new_id)
    return DrillReport(
        variant=stand_in.variant,
        old_host=f"{old.name} ({stand_in.old_id})",
        new_host=f"{new.name} ({new_id})",
        acked_writes=len(acks),
        lost_writes=len(found["lost"]),
        loss_window_s=loss_window_s(acks, set(found["lost"])),
        drain_s=round(stand_in.volume_free_at - interrupted_at, 2) if drained else None,
        rto_s=rto,
        dataset=booted.get("dataset"),
        warmup_tasks_started=len(tasks["taskArns"]),
        slack_titles=slack_titles(slack_since),
        keys_before_missing=len(found["keys_missing"]),
        boot_steps=boot_steps(new),
        timeline=timeline(stand_in.milestones, interrupted_at, rto),
    )


def timeline(milestones: dict[str, float], interrupted_at: float, rto: float | None) -> dict[str, float]:
    """Each milestone's seconds after the interruption, in the order they happened."""
    seconds = {name: round(at - interrupted_at, 2) for name, at in milestones.items()}
    if rto is not None:
        seconds["first write acknowledged by the replacement"] = rto
    return dict(sorted(seconds.items(), key=lambda item: item[1]))


def boot_steps(node: topology.Node) -> dict[str, float]:
    """The agent's own account of its boot: the last JSON line of the boot log."""
    lines = (control.host_dir(node) / "boot.log").read_text().splitlines()
    last = next((line for line in reversed(lines) if line.startswith("{")), "{}")
    return json.loads(last).get("steps", {})


def main(variant: str) -> None:
    if variant not in VARIANTS:
        raise DrillError(f"no variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    report = run(variant)
    print(report.table(), flush=True)
    print(report.json_line(), flush=True)
