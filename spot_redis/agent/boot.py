"""`boot`: the Spot host configures itself, slow work first, then the data volume, then Redis.

Order (each step timed; the first failure stops the boot, is announced as "Redis Host Bootstrap Failed" with the
step, and exits non-zero):

    packages    Debian packages Ansible needs, and the SSM agent (Session Manager is the only way in)
    ansible     ansible-core (requirements.txt's pin) in its own virtualenv
    metadata    instance id, private address, VPC networks (IMDSv2)
    volume      wait until the data volume is available (an interrupted predecessor may still hold it), attach it;
                a host that gives up marks itself Unhealthy so that its group replaces it
    device      the attached volume's block device, found by its volume id
    mount       mount it (mkfs only a volume without any file system signature)
    layout      Redis's files in <mount>/redis, beside Prometheus's and Alertmanager's (spot_redis.agent.layout):
                a volume of the first layout, Redis's files at its root, is moved in place
    dataset     complete, crash or empty (spot_redis.agent.dataset), decided once per instance
    configure   the secrets from SSM into a root-only file, then ansible-playbook site.yml on this host
    register    Cloud Map: redis.<namespace> -> this host, under the fixed instance id
    announce    "Redis Host Ready" with the dataset

Running it again on the same instance is safe: the volume attached to this instance is kept, a mounted file system
is not mounted twice, the dataset is the one this instance decided first, Ansible and Cloud Map are idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spot_redis.agent import dataset, layout
from spot_redis.agent.announce import Announcer
from spot_redis.agent.clients import Clients
from spot_redis.agent.imds import Imds
from spot_redis.agent.settings import CLOUDMAP_INSTANCE_ID, SECRET_PARAMETERS, HostSettings
from spot_redis.events import BOOTSTRAP_FAILED, HOST_READY, Dataset

log = logging.getLogger("spot-redis-agent")

DEBIAN_PACKAGES = ("python3-venv", "python3-apt", "ca-certificates", "curl", "e2fsprogs", "util-linux")
OPT_DIR = Path("/opt/spot-redis")
STATE_DIR = Path("/var/lib/spot-redis")
ETC_DIR = Path("/etc/spot-redis")
SECRETS_PARENT = Path("/run")
VOLUME_WAIT_S = 600  # an interrupted predecessor detaches within its 2-minute notice; EC2 frees it at termination
VOLUME_POLL_S = 2.0
DEVICE_WAIT_S = 120
CLOUDMAP_WAIT_S = 60
SSM_AGENT_URL = "https://s3.{region}.amazonaws.com/amazon-ssm-{region}/latest/debian_{arch}/amazon-ssm-agent.deb"


class BootError(RuntimeError):
    """A step could not be done; the message says what and why (never a secret)."""


@dataclass
class Host:
    """What the boot learns about this instance."""

    instance_id: str = ""
    private_ip: str = ""
    vpc_cidrs: tuple[str, ...] = ()
    device: str = ""


@dataclass
class Paths:
    """Where the boot reads and writes on the host; tests point them into a temporary directory."""

    opt: Path = OPT_DIR
    state: Path = STATE_DIR
    etc: Path = ETC_DIR
    secrets_parent: Path = SECRETS_PARENT
    dev: Path = Path("/dev")
    fstab: Path = Path("/etc/fstab")

    @property
    def bundle(self) -> Path:
        return self.opt / "bundle"

    @property
    def venv(self) -> Path:
        return self.opt / "venv"


@dataclass
class Boot:
    settings: HostSettings
    clients: Clients
    imds: Imds
    paths: Paths = field(default_factory=Paths)
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    install_ssm_agent: bool = True
    ansible_vars: dict[str, Any] = field(default_factory=dict)  # extra inventory variables (the lab's endpoints)
    volume_wait_s: float = VOLUME_WAIT_S
    host: Host = field(default_factory=Host)
    steps: dict[str, float] = field(default_factory=dict)
    decision: dataset.Decision | None = None

    # --- the sequence ----------------------------------------------------------------------------------------

    def boot(self) -> dataset.Decision:
        started = self.clock()
        sequence = (
            ("packages", self.packages),
            ("ansible", self.ansible),
            ("metadata", self.metadata),
            ("volume", self.volume),
            ("device", self.find_device),
            ("mount", self.mount),
            ("layout", self.layout),
            ("dataset", self.decide_dataset),
            ("configure", self.configure),
            ("register", self.register),
        )
        for name, step in sequence:
            self._step(name, step)
        assert self.decision is not None
        self.steps["total"] = round(self.clock() - started, 2)
        self._step("announce", self._announce_ready)
        log.info("boot done in %.1f s: %s", self.steps["total"], json.dumps(self.steps))
        return self.decision

    def _step(self, name: str, step: Callable[[], None]) -> None:
        log.info("=== %s", name)
        started = self.clock()
        try:
            step()
        except Exception as error:
            log.error("boot failed in step %s: %s", name, error)
            self._announce_failure(name, str(error))
            raise BootError(f"{name}: {error}") from error
        self.steps[name] = round(self.clock() - started, 2)
        log.info("%s took %.2f s", name, self.steps[name])

    # --- slow work that does not need the volume ------------------------------------------------------------

    def packages(self) -> None:
        apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        self._retry(lambda: self._cmd([*apt, "update"], env=env, timeout=600))
        install = [*apt, "-y", "install", "--no-install-recommends", *DEBIAN_PACKAGES]
        self._retry(lambda: self._cmd(install, env=env, timeout=900))
        if self.install_ssm_agent:
            self._ssm_agent()

    def _ssm_agent(self) -> None:
        status = self._cmd(["dpkg-query", "-W", "-f=${Status}", "amazon-ssm-agent"], check=False)
        if "ok installed" not in status.stdout:
            arch = self._cmd(["dpkg", "--print-architecture"]).stdout.strip()
            url = SSM_AGENT_URL.format(region=self.settings.region, arch=arch)
            deb = self.paths.opt / "amazon-ssm-agent.deb"
            deb.parent.mkdir(parents=True, exist_ok=True)
            self._retry(
                lambda: self._cmd(["curl", "-sSf", "-L", "--proto", "=https", "-o", str(deb), url], timeout=300)
            )
            self._cmd(["dpkg", "-i", str(deb)], timeout=300)
            deb.unlink(missing_ok=True)
        self._cmd(["systemctl", "enable", "--now", "amazon-ssm-agent"], timeout=60)

    def ansible(self) -> None:
        version = self.settings.ansible_core_version
        done = self.paths.venv / f".ansible-core-{version}"
        if done.exists():
            log.info("ansible-core %s is installed", version)
            return
        shutil.rmtree(self.paths.venv, ignore_errors=True)
        self._cmd(["python3", "-m", "venv", str(self.paths.venv)], timeout=300)
        pip = [str(self.paths.venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir"]
        self._retry(lambda: self._cmd([*pip, f"ansible-core=={version}"], timeout=900))
        done.touch()

    # --- the instance and its data volume --------------------------------------------------------------------

    def metadata(self) -> None:
        host = self.host
        host.instance_id = self.imds.instance_id()
        host.private_ip = self.imds.local_ipv4()
        host.vpc_cidrs = tuple(self.imds.vpc_cidrs())
        if not host.instance_id.startswith("i-") or not host.private_ip:
            raise BootError(f"unexpected instance metadata: {host.instance_id!r}, {host.private_ip!r}")
        log.info("instance %s at %s, VPC %s", host.instance_id, host.private_ip, ", ".join(host.vpc_cidrs))

    def volume(self) -> None:
        volume_id, instance_id = self.settings.data_volume_id, self.host.instance_id
        deadline = self.clock() + self.volume_wait_s
        while True:
            state, holder = self._volume_state()
            if state == "in-use" and holder == instance_id:
                log.info("the data volume is attached to this instance")
                return
            if state == "available":
                if self._attach():
                    return
            elif state in ("error", "deleting", "deleted"):
                raise BootError(f"the data volume {volume_id} is {state}")
            else:
                log.info("the data volume is %s (held by %s): waiting", state, holder or "nobody")
            if self.clock() >= deadline:
                self._give_up(f"the data volume {volume_id} was not available within {self.volume_wait_s:.0f} s "
                              f"(last seen {state}, held by {holder or 'nobody'})")  # fmt: skip
            self.sleep(VOLUME_POLL_S)

    def _volume_state(self) -> tuple[str, str | None]:
        (volume,) = self.clients.ec2.describe_volumes(VolumeIds=[self.settings.data_volume_id])["Volumes"]
        attachments = [a for a in volume.get("Attachments", []) if a.get("State") in ("attaching", "attached")]
        return volume["State"], attachments[0]["InstanceId"] if attachments else None

    def _attach(self) -> bool:
        try:
            self.clients.ec2.attach_volume(
                VolumeId=self.settings.data_volume_id, InstanceId=self.host.instance_id, Device="/dev/sdf"
            )
        except Exception as error:
            log.warning("attach-volume failed (%s): looking again", error)
            return False
        log.info("attached %s as /dev/sdf", self.settings.data_volume_id)
        return True

    def _give_up(self, why: str) -> None:
        """Out of patience: let the group replace this host (it may find the volume free), and say why."""
        try:
            self.clients.autoscaling.set_instance_health(
                InstanceId=self.host.instance_id, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False
            )
            why += "; marked Unhealthy in its Auto Scaling group, which replaces it"
        except Exception as error:
            why += f"; could not mark it Unhealthy ({error})"
        raise BootError(why)

    def find_device(self) -> None:
        """Nitro: the NVMe device whose serial is the volume id without its dash (udev's by-id link). Xen: xvdf."""
        by_id = (
            self.paths.dev
            / "disk/by-id"
            / f"nvme-Amazon_Elastic_Block_Store_{self.settings.data_volume_id.replace('-', '')}"
        )
        candidates = (by_id, self.paths.dev / "sdf", self.paths.dev / "xvdf")
        deadline = self.clock() + DEVICE_WAIT_S
        while True:
            found = next((path for path in candidates if path.exists()), None)
            if found is not None:
                self.host.device = str(found)
                log.info("the data volume is %s (%s)", found, os.path.realpath(found))
                return
            if self.clock() >= deadline:
                raise BootError(f"no block device for {self.settings.data_volume_id} after {DEVICE_WAIT_S} s "
                                f"({', '.join(map(str, candidates))})")  # fmt: skip
            self.sleep(0.5)

    def mount(self) -> None:
        device, mount_point = self.host.device, self.settings.data_mount
        probe = self._cmd(["blkid", "-p", "-o", "value", "-s", "TYPE", device], check=False)
        fs_type = probe.stdout.strip()
        if probe.returncode == 2 and not fs_type:
            log.info("the volume has no file system: making ext4")
            self._cmd(["mkfs.ext4", "-q", "-L", "spot-redis-data", device], timeout=300)
            fs_type = "ext4"
        elif probe.returncode != 0 or not fs_type:
            raise BootError(f"blkid could not tell what {device} holds (exit {probe.returncode}): not touching it")
        else:
            log.info("the volume has a %s file system: keeping it", fs_type)
        uuid = self._cmd(["blkid", "-p", "-o", "value", "-s", "UUID", device]).stdout.strip()
        if not uuid:
            raise BootError(f"no file system UUID on {device}")
        self._fstab(f"UUID={uuid} {mount_point} {fs_type} defaults,noatime,nofail 0 2", mount_point)
        Path(mount_point).mkdir(parents=True, exist_ok=True)
        if self._cmd(["mountpoint", "-q", mount_point], check=False).returncode == 0:
            log.info("%s is mounted already", mount_point)
        else:
            self._cmd(["mount", mount_point], timeout=60)
            log.info("mounted %s", mount_point)

    def _fstab(self, line: str, mount_point: str) -> None:
        fstab = self.paths.fstab
        current = fstab.read_text().splitlines() if fstab.exists() else []
        if line in current:
            return
        kept = [entry for entry in current if entry.lstrip().startswith("#") or entry.split()[1:2] != [mount_point]]
        _write_atomic(fstab, "\n".join([*kept, line]) + "\n", 0o644)
        self._cmd(["systemctl", "daemon-reload"], check=False, timeout=60)
        log.info("fstab: %s", line)

    def layout(self) -> None:
        """Before the dataset is read and before Redis starts: its files where the redis role points it."""
        mount = self.settings.data_mount
        before = layout.status(mount)
        moved = layout.migrate(mount)
        if before in ("first", "interrupted"):
            log.info("layout: moved %s from %s into %s", ", ".join(moved) or "nothing more", mount,
                     layout.redis_dir(mount))  # fmt: skip
        else:
            log.info("layout: %s (Redis's files in %s)", before, layout.redis_dir(mount))

    def decide_dataset(self) -> None:
        """Decided once per instance, before Redis writes to the volume: a re-run reports what this instance found."""
        record = self.paths.state / "dataset.json"
        try:
            saved = json.loads(record.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("instance-id") == self.host.instance_id:
            self.decision = dataset.Decision(
                Dataset(saved["dataset"]), saved_marker(saved), reason="decided by an earlier run on this instance"
            )
        else:
            self.decision = dataset.decide(layout.redis_dir(self.settings.data_mount))
            marker = self.decision.marker
            saved = {"instance-id": self.host.instance_id, "dataset": str(self.decision.dataset),
                     "saved-at": marker.saved_at if marker else None,
                     "marker-instance-id": marker.instance_id if marker else None}  # fmt: skip
            self.paths.state.mkdir(parents=True, exist_ok=True)
            _write_atomic(record, json.dumps(saved), 0o644)
            # Redis writes from now on: a marker left from the previous host must not outlive its data.
            dataset.clear_marker(layout.redis_dir(self.settings.data_mount))
        log.info("dataset: %s (%s)", self.decision.dataset, self.decision.reason)

    # --- Redis and its name ------------------------------------------------------------------------------------

    def configure(self) -> None:
        self.paths.secrets_parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="spot-redis-boot.", dir=self.paths.secrets_parent) as secrets_dir:
            os.chmod(secrets_dir, 0o700)
            vars_file = Path(secrets_dir) / "vars.json"
            _write_atomic(vars_file, json.dumps(self._secret_vars()), 0o600)
            inventory = self.paths.etc / "inventory.json"
            _write_atomic(inventory, json.dumps(self.inventory(), indent=2), 0o600)
            bundle = self.paths.bundle
            env = {**os.environ, "ANSIBLE_CONFIG": str(bundle / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_RETRY_FILES_ENABLED": "0"}  # fmt: skip
            playbook = [str(self.paths.venv / "bin/ansible-playbook"), "-i", str(inventory),
                        "-e", f"@{vars_file}", str(bundle / "ansible/site.yml")]  # fmt: skip
            result = self.run(playbook, cwd=bundle, env=env, timeout=1800, check=False)
            if result.returncode != 0:
                raise BootError(f"ansible-playbook site.yml failed (exit {result.returncode}); see the boot log")

    def _secret_vars(self) -> dict[str, str]:
        prefix = self.settings.parameter_prefix
        names = [f"{prefix}/{name}" for name in SECRET_PARAMETERS]
        response = self.clients.ssm.get_parameters(Names=names, WithDecryption=True)
        values = {p["Name"]: p["Value"] for p in response.get("Parameters", [])}
        missing = [name for name in names if not values.get(name)]
        if missing:
            raise BootError("missing or empty SSM parameters: " + ", ".join(missing))
        secret_vars = {var: values[f"{prefix}/{name}"] for name, vars_ in SECRET_PARAMETERS.items() for var in vars_}
        log.info("secrets read into %s", ", ".join(sorted(secret_vars)))
        return secret_vars

    def inventory(self) -> dict[str, Any]:
        """This host alone, named by its instance id as in inventories/aws, so a push renders the same config.

        Without monitoring_addresses the host monitors itself (Prometheus and Alertmanager on it too), and their
        state goes on the data volume beside Redis's, so that it outlives the host.
        """
        settings, host = self.settings, self.host
        allowed = [*host.vpc_cidrs, *(c for c in settings.redis_allowed_cidrs if c not in host.vpc_cidrs)]
        monitors = list(settings.monitoring_addresses) or [host.private_ip]
        variables = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "private_address": host.private_ip,
            "monitoring_addresses": monitors,
            "admin_cidrs": list(settings.admin_cidrs),
            # The security group is the precise filter; the host firewall admits the VPC and any extra networks.
            "redis_allowed_cidrs": allowed,
            "redis_monitoring_addresses": monitors,
            "redis_data_mount": settings.data_mount,
            "redis_data_dir": str(layout.redis_dir(settings.data_mount)),
            "redis_legacy_auth": settings.redis_legacy_auth,
            "spot_host_enabled": True,
        }
        if not settings.monitoring_addresses:
            variables |= monitoring_storage_vars(settings.data_mount)
        variables |= self.ansible_vars
        members = {host.instance_id: {}}
        groups = {"redis": {"hosts": members}}
        if not settings.monitoring_addresses:
            groups["monitoring"] = {"hosts": members}
        return {"all": {"children": groups, "vars": variables}}

    def register(self) -> None:
        if (self.paths.state / f"drained-{self.host.instance_id}").exists():
            raise BootError("a Spot interruption notice drained this host during its boot: not registering it")
        discovery = self.clients.servicediscovery
        operation = discovery.register_instance(
            ServiceId=self.settings.cloudmap_service_id,
            InstanceId=CLOUDMAP_INSTANCE_ID,
            Attributes={"AWS_INSTANCE_IPV4": self.host.private_ip},
        )["OperationId"]
        deadline = self.clock() + CLOUDMAP_WAIT_S
        while (status := discovery.get_operation(OperationId=operation)["Operation"]["Status"]) != "SUCCESS":
            if status == "FAIL" or self.clock() >= deadline:
                raise BootError(f"Cloud Map operation {operation} is {status}")
            self.sleep(1)
        log.info("Cloud Map: %s -> %s", CLOUDMAP_INSTANCE_ID, self.host.private_ip)

    # --- announcements ------------------------------------------------------------------------------------------

    def _announcer(self) -> Announcer | None:
        instance_id = self.host.instance_id or _quiet(self.imds.instance_id)
        return Announcer(self.clients.events, self.settings.stack, instance_id) if instance_id else None

    def _announce_ready(self) -> None:
        decision = self.decision
        marker = decision.marker
        detail: dict[str, Any] = {"dataset": str(decision.dataset), "boot-seconds": self.steps["total"],
                                  "steps": self.steps}  # fmt: skip
        if marker is not None:
            detail |= {"saved-at": marker.saved_at, "marker-instance-id": marker.instance_id}
        announcer = self._announcer()
        assert announcer is not None
        self._retry(lambda: announcer.send(HOST_READY, **detail))

    def _announce_failure(self, step: str, reason: str) -> None:
        announcer = self._announcer()
        if announcer is None:
            log.error("cannot announce the failure: the instance id is unknown")
            return
        announcer.try_send(BOOTSTRAP_FAILED, step=step, reason=reason[:1000])

    # --- helpers --------------------------------------------------------------------------------------------------

    def _cmd(self, argv: list[str], *, check: bool = True, timeout: float = 120, **kwargs: Any):
        result = self.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
        if check and result.returncode != 0:
            raise BootError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed (exit {result.returncode}): "
                            f"{(result.stderr or '').strip()[-500:]}")  # fmt: skip
        return result

    def _retry(self, action: Callable[[], Any], attempts: int = 3, delay_s: float = 5) -> Any:
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except Exception as error:
                if attempt == attempts:
                    raise
                log.warning("attempt %d of %d failed (%s): again in %.0f s", attempt, attempts, error, delay_s)
                self.sleep(delay_s)
        return None


def monitoring_storage_vars(data_mount: str) -> dict[str, str]:
    """Prometheus's and Alertmanager's state on the data volume: for the host that monitors itself."""
    return {
        "prometheus_storage_path": str(layout.prometheus_dir(data_mount)),
        "alertmanager_storage_path": str(layout.alertmanager_dir(data_mount)),
    }


def saved_marker(saved: dict[str, Any]) -> dataset.Marker | None:
    if not saved.get("saved-at"):
        return None
    return dataset.Marker(instance_id=saved.get("marker-instance-id") or "", saved_at=saved["saved-at"], files={})


def _quiet(read: Callable[[], str]) -> str:
    try:
        return read()
    except Exception:
        return ""


def _write_atomic(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
