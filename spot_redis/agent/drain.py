"""The drain after a Spot interruption notice, inside the two-minute warning.

Steps, in order: leave the Auto Scaling group (the replacement launches at once), deregister from Cloud Map, pause
Redis's writes, save, stop Redis, write the clean-stop marker, stop Prometheus and Alertmanager where their state is
on the volume (the host monitors itself), unmount the data volume, detach it, announce
HOST_DRAINED. A failed step is logged and recorded and the drain goes on: whatever else happened, the replacement
must get the volume.

Every step is bounded: subprocesses get timeouts, the volume wait has a deadline, and AWS calls are bounded by the
botocore configuration of :class:`DrainClients` (the agent's own clients allow a minute a call). Each budget below
is the worst case its timeouts allow, and they add up to less than the warning (a unit test checks the sum).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spot_redis.agent import dataset, layout
from spot_redis.agent.announce import Announcer
from spot_redis.agent.clients import Clients
from spot_redis.agent.redis_ctl import COMMAND_TIMEOUT_S, SAVE_TIMEOUT_S, STOP_TIMEOUT_S, RedisControl
from spot_redis.events import HOST_DRAINED, iso_time

log = logging.getLogger("spot-redis-agent")

# One AWS call: two attempts of (1 s to connect + 2 s to answer), and up to 1 s of backoff between them.
AWS_CONNECT_S = 1
AWS_READ_S = 2
AWS_ATTEMPTS = 2
AWS_CALL_S = AWS_ATTEMPTS * (AWS_CONNECT_S + AWS_READ_S) + 1

SYNC_TIMEOUT_S = 2.0
UMOUNT_TIMEOUT_S = 2.0
FUSER_TIMEOUT_S = 1.0
UMOUNT_RETRY_DELAY_S = 1.0
VOLUME_POLL_S = 0.5

LEAVE_GROUP_S = 2 * AWS_CALL_S  # describe_auto_scaling_instances, detach_instances
DEREGISTER_S = 2 * AWS_CALL_S  # get_instance, deregister_instance
PAUSE_WRITES_S = COMMAND_TIMEOUT_S
SAVE_S = SAVE_TIMEOUT_S + 3 * COMMAND_TIMEOUT_S  # SAVE, DBSIZE, LASTSAVE, CONFIG SET save ""
STOP_REDIS_S = STOP_TIMEOUT_S
MARK_CLEAN_S = 1.0  # a small file written and fsynced on the data volume; local I/O, not enforced
# Prometheus closes its database (the WAL is on disk already) and Alertmanager snapshots its state, in about a second.
STOP_MONITORING_S = 5.0
UNMOUNT_S = SYNC_TIMEOUT_S + UMOUNT_TIMEOUT_S + FUSER_TIMEOUT_S + UMOUNT_RETRY_DELAY_S + UMOUNT_TIMEOUT_S
# describe_volumes and detach_volume, then at least 10 s of polling (more when those calls were quick).
DETACH_VOLUME_S = 2 * AWS_CALL_S + 10
ANNOUNCE_S = AWS_CALL_S  # when the announcer's events client is a DrainClients' one

BUDGETS = {
    "leave_group": LEAVE_GROUP_S,
    "deregister": DEREGISTER_S,
    "pause_writes": PAUSE_WRITES_S,
    "save": SAVE_S,
    "stop_redis": STOP_REDIS_S,
    "mark_clean": MARK_CLEAN_S,
    "stop_monitoring": STOP_MONITORING_S,
    "unmount": UNMOUNT_S,
    "detach_volume": DETACH_VOLUME_S,
    "announce": ANNOUNCE_S,
}
# Writes stay paused until Redis has stopped (or failed to), with a margin.
PAUSE_WRITES_MS = int((SAVE_S + STOP_REDIS_S + 4) * 1000)

Run = Callable[..., subprocess.CompletedProcess]


def DrainClients(region: str, endpoint_url: str | None = None) -> Clients:  # noqa: N802 - reads as a class
    """The agent's AWS clients with the drain's short timeouts: give these to Drain and to its Announcer."""
    return Clients(region, endpoint_url, connect_timeout_s=AWS_CONNECT_S, read_timeout_s=AWS_READ_S,
                   attempts=AWS_ATTEMPTS)  # fmt: skip


# A volume that could not be unmounted is not detached: EC2 frees it when it reclaims this host, about two minutes
# later, and the replacement attaches it then (the dataset will say crash). Safer than pulling it from under Redis.
KEPT_MOUNTED = "not detached: the volume is still mounted; EC2 frees it when it reclaims this host"


@dataclass
class DrainReport:
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds, in the order they ran
    failed: dict[str, str] = field(default_factory=dict)  # step -> error
    keys: int | None = None
    saved_at: str | None = None  # from the clean-stop marker, when one was written
    drain_seconds: float | None = None  # from the start of the drain to the end of detach_volume

    def succeeded(self, step: str) -> bool:
        return step in self.steps and step not in self.failed


class DrainStepError(RuntimeError):
    pass


class Drain:
    def __init__(
        self,
        clients: Any,
        announcer: Announcer,
        instance_id: str,
        private_ip: str,
        volume_id: str,
        data_dir: Path,
        cloudmap_service_id: str,
        redis: RedisControl,
        cloudmap_instance_id: str = "redis-host",
        monitoring_units: tuple[str, ...] = (),
        run: Run = subprocess.run,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.clients = clients
        self.announcer = announcer
        self.instance_id = instance_id
        self.private_ip = private_ip
        self.volume_id = volume_id
        self.data_dir = Path(data_dir)
        self.cloudmap_service_id = cloudmap_service_id
        self.cloudmap_instance_id = cloudmap_instance_id
        self.redis = redis
        self.monitoring_units = monitoring_units  # services whose state is on the data volume, besides Redis
        self.run = run
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep

    def drain(self, notice: Any) -> DrainReport:
        report = DrainReport()
        started = self.clock()
        self._step(report, "leave_group", self.leave_group)
        self._step(report, "deregister", self.deregister)
        self._step(report, "pause_writes", lambda: self.redis.pause_writes(PAUSE_WRITES_MS, PAUSE_WRITES_S))
        report.keys = self._step(report, "save", self.save)
        self._step(report, "stop_redis", lambda: self.redis.stop_service("redis-server", STOP_REDIS_S))
        if report.succeeded("save") and report.succeeded("stop_redis"):
            report.saved_at = self._step(report, "mark_clean", lambda: self.mark_clean(report.keys))
        else:
            log.warning("no clean-stop marker: the save or the stop failed, so the next boot must report a crash")
        self._step(report, "stop_monitoring", self.stop_monitoring)
        self._step(report, "unmount", self.unmount)
        if report.succeeded("unmount"):
            self._step(report, "detach_volume", self.detach_volume)
        else:
            report.failed["detach_volume"] = KEPT_MOUNTED
            log.warning("drain step detach_volume skipped: %s", KEPT_MOUNTED)
        report.drain_seconds = round(self.clock() - started, 2)
        self._step(report, "announce", lambda: self.announce(notice, report))
        self._log_outcome(notice, report)
        return report

    def _step(self, report: DrainReport, name: str, action: Callable[[], Any]) -> Any:
        started = self.clock()
        try:
            return action()
        except Exception as error:  # any: a failed step must not keep the volume from the replacement
            report.failed[name] = f"{type(error).__name__}: {error}"
            log.error("drain step %s failed: %s", name, report.failed[name])
            return None
        finally:
            report.steps[name] = round(self.clock() - started, 2)
            log.info("drain step %s: %.2f s (budget %g s)", name, report.steps[name], BUDGETS[name])

    def leave_group(self) -> None:
        """Detach from the group without decrementing it: the group launches the replacement now."""
        autoscaling = self.clients.autoscaling
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[self.instance_id])["AutoScalingInstances"]
        if not found:
            log.info("not in an Auto Scaling group: nothing to leave")
            return
        group = found[0]["AutoScalingGroupName"]
        autoscaling.detach_instances(
            InstanceIds=[self.instance_id], AutoScalingGroupName=group, ShouldDecrementDesiredCapacity=False
        )
        log.info("left the Auto Scaling group %s; it launches the replacement", group)

    def deregister(self) -> None:
        """Deregister from Cloud Map unless the record already names a replacement (same fixed instance id)."""
        cloudmap = self.clients.servicediscovery
        try:
            instance = cloudmap.get_instance(ServiceId=self.cloudmap_service_id, InstanceId=self.cloudmap_instance_id)
        except cloudmap.exceptions.InstanceNotFound:
            log.info("not registered in Cloud Map: nothing to deregister")
            return
        address = instance["Instance"].get("Attributes", {}).get("AWS_INSTANCE_IPV4")
        if address != self.private_ip:
            log.info(
                "Cloud Map names %s, not this host (%s): a replacement's record, left alone", address, self.private_ip
            )
            return
        cloudmap.deregister_instance(ServiceId=self.cloudmap_service_id, InstanceId=self.cloudmap_instance_id)
        log.info("deregistered %s from Cloud Map", self.private_ip)

    def save(self) -> int:
        """SAVE with writes paused, then the keys it holds (the marker records them). Then no save points: Redis
        would otherwise write the same RDB a second time as systemd stops it, doubling the time a large dataset
        takes. (If SAVE fails, the save points stay: the stop's own save is the one that counts.)"""
        self.redis.save(SAVE_TIMEOUT_S)
        keys = self.redis.dbsize(COMMAND_TIMEOUT_S)
        lastsave = self.redis.lastsave(COMMAND_TIMEOUT_S)
        log.info("saved %d keys (LASTSAVE %s)", keys, datetime.fromtimestamp(lastsave, UTC).isoformat())
        self.redis.without_save_points(COMMAND_TIMEOUT_S)
        return keys

    def mark_clean(self, keys: int | None) -> str:
        """The clean-stop marker; returns the time of the save it names."""
        return dataset.write_marker(layout.find_redis_dir(self.data_dir), self.instance_id, keys).saved_at

    def stop_monitoring(self) -> None:
        """Prometheus and Alertmanager keep their state on the volume when the host monitors itself: they must let
        go of it before the unmount (a failure here shows as a busy volume, which is then not detached)."""
        if not self.monitoring_units:
            log.info("no monitoring state on the data volume: nothing to stop")
            return
        self._command(["systemctl", "stop", *self.monitoring_units], STOP_MONITORING_S, required=True)
        log.info("stopped %s", ", ".join(self.monitoring_units))

    def unmount(self) -> None:
        """sync, umount; when busy, log who holds it and try once more. Never lazily: a detached volume would lose
        the writes still pending."""
        self._command(["sync", "--file-system", str(self.data_dir)], SYNC_TIMEOUT_S, required=False)
        first = self._command(["umount", str(self.data_dir)], UMOUNT_TIMEOUT_S, required=False)
        if first.returncode == 0:
            return
        if "not mounted" in first.stderr:
            log.info("%s is not mounted: nothing to unmount", self.data_dir)
            return
        holders = self._command(["fuser", "-vm", str(self.data_dir)], FUSER_TIMEOUT_S, required=False)
        log.warning("umount %s failed (%s); held by: %s", self.data_dir, first.stderr.strip(), holders.stderr.strip())
        self.sleep(UMOUNT_RETRY_DELAY_S)
        self._command(["umount", str(self.data_dir)], UMOUNT_TIMEOUT_S, required=True)

    def detach_volume(self) -> None:
        """Detach the volume if it is attached here, then wait until it is available.

        Only after a successful unmount (see KEPT_MOUNTED): a volume detached under a live file system can be left
        'busy' and its file system damaged.
        """
        deadline = self.clock() + DETACH_VOLUME_S - AWS_CALL_S  # start no poll that could outlast the budget
        ec2 = self.clients.ec2
        volume = ec2.describe_volumes(VolumeIds=[self.volume_id])["Volumes"][0]
        ours = [a for a in volume.get("Attachments", []) if a.get("InstanceId") == self.instance_id]
        if not ours:
            log.info("volume %s is not attached here (%s): nothing to detach", self.volume_id, volume["State"])
            return
        if ours[0].get("State") in ("attaching", "attached"):
            ec2.detach_volume(VolumeId=self.volume_id, InstanceId=self.instance_id, Force=False)
        self._wait_available(ec2, deadline)

    def _wait_available(self, ec2: Any, deadline: float) -> None:
        while True:
            state = ec2.describe_volumes(VolumeIds=[self.volume_id])["Volumes"][0]["State"]
            if state == "available":
                log.info("volume %s is available for the replacement", self.volume_id)
                return
            if self.clock() + VOLUME_POLL_S >= deadline:
                raise DrainStepError(f"volume {self.volume_id} still {state} at the end of the wait")
            self.sleep(VOLUME_POLL_S)

    def announce(self, notice: Any, report: DrainReport) -> None:
        detail: dict[str, Any] = {
            "notice-time": iso_time(notice.time),
            "steps": dict(report.steps),
            "failed-steps": list(report.failed),
            "drain-seconds": report.drain_seconds,
            "volume-id": self.volume_id,
        }
        if report.keys is not None:
            detail["keys"] = report.keys
        if report.saved_at:
            detail["saved-at"] = report.saved_at
        if not self.announcer.try_send(HOST_DRAINED, **detail):
            raise DrainStepError("HOST_DRAINED was not sent")

    def _command(self, command: list[str], timeout_s: float, required: bool) -> subprocess.CompletedProcess:
        """Run a system command; a timeout or a missing program reads as a failed command. C locale: umount's
        messages are matched ("not mounted")."""
        try:
            result = self.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env={**os.environ, "LC_ALL": "C"},
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError) as error:
            result = subprocess.CompletedProcess(command, 124, "", f"{type(error).__name__}: {error}")
        result.stdout, result.stderr = result.stdout or "", result.stderr or ""
        if result.returncode != 0:
            log.warning("%s: exit %d: %s", " ".join(command), result.returncode, result.stderr.strip())
            if required:
                raise DrainStepError(f"{' '.join(command)}: {result.stderr.strip() or f'exit {result.returncode}'}")
        return result

    def _log_outcome(self, notice: Any, report: DrainReport) -> None:
        left = (notice.time - self.wall_clock()).total_seconds()
        outcome = f"failed steps: {', '.join(report.failed)}" if report.failed else "every step succeeded"
        margin = f"{left:.0f} s before the interruption" if left >= 0 else f"{-left:.0f} s after the notice's time"
        log.warning("drained in %.2f s, %s; %s", report.drain_seconds, margin, outcome)
