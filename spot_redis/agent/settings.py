"""What the host needs to know at boot: HostSettings, written by the Pulumi program into the user data and, by the
user data, into /etc/spot-redis/host.env (SPOT_REDIS_* lines, shell-quoted). Nothing secret: user data is readable
by anyone with ec2:DescribeInstanceAttribute; the host reads its secrets from SSM Parameter Store at run time.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

ENV_PREFIX = "SPOT_REDIS_"
SETTINGS_FILE = Path("/etc/spot-redis/host.env")
# The fixed Cloud Map instance id: a replacement host overwrites the record instead of adding a second one.
CLOUDMAP_INSTANCE_ID = "redis-host"

# The parameters under the stack's prefix that the host reads at boot (infra/parameters.py creates them), and the
# Ansible variables each one becomes.
SECRET_PARAMETERS: dict[str, tuple[str, ...]] = {
    "redis/admin-password": ("redis_admin_password",),
    "redis/app-password": ("redis_app_password",),
    "redis/monitor-password": ("redis_monitor_password", "redis_exporter_redis_password"),
    "slack-webhook-url": ("alertmanager_slack_webhook_url",),
    "heartbeat-url": ("alertmanager_heartbeat_url",),
}

_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*([A-Za-z0-9.+!-]*)$")


@dataclass(frozen=True)
class HostSettings:
    """What the host needs to know at boot. Nothing secret: it becomes EC2 user data."""

    stack: str
    region: str
    data_volume_id: str
    data_mount: str  # the data volume's mount point, the redis role's redis_data_mount (/srv/redis; see layout.py)
    bundle_bucket: str
    bundle_key: str  # e.g. "bundles/ansible-<digest>.zip", a zip of infra.bootstrap.bundle_files()
    parameter_prefix: str  # "/spot-redis/<stack>"
    cloudmap_service_id: str  # "srv-..."
    ansible_core_version: str  # requirements.txt's pin
    admin_cidrs: tuple[str, ...]  # who else may reach the monitoring ports
    # Client networks besides the VPC's own CIDR blocks that the host firewall admits to Redis (peered VPCs, VPN):
    # the security group is the precise filter, the host firewall admits the VPC and these.
    redis_allowed_cidrs: tuple[str, ...] = ()
    # Where Prometheus scrapes this host from. Empty: the host runs its own monitoring (the cheapest layout).
    monitoring_addresses: tuple[str, ...] = ()
    # The redis role's redis_legacy_auth: `AUTH <app password>` logs in as the app user would (the stack's
    # spot-redis:redisLegacyAuth).
    redis_legacy_auth: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"HostSettings.{field.name} must be true or false, got {value!r}")
                continue
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                if not isinstance(item, str):
                    raise ValueError(f"HostSettings.{field.name} must be text, got {item!r}")
                if any(ord(char) < 32 or ord(char) == 127 for char in item):
                    raise ValueError(f"HostSettings.{field.name} must not hold control characters, got {item!r}")
            if not isinstance(value, tuple) and not value:
                raise ValueError(f"HostSettings.{field.name} must not be empty")
        if not re.fullmatch(r"/[^\s]*[^/\s]", self.data_mount):
            raise ValueError(f"data_mount must be an absolute path without a trailing slash, got {self.data_mount!r}")
        if not re.fullmatch(r"(/[A-Za-z0-9_.-]+)+", self.parameter_prefix):
            raise ValueError(
                f"parameter_prefix must be a parameter path such as /spot-redis/staging, got {self.parameter_prefix!r}"
            )
        if not _VERSION_RE.fullmatch(self.ansible_core_version):
            raise ValueError(
                f"ansible_core_version must be a version such as 2.19.14, got {self.ansible_core_version!r}"
            )
        for name in ("admin_cidrs", "redis_allowed_cidrs"):
            for cidr in getattr(self, name):
                _check_cidr(name, cidr)
        for address in self.monitoring_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"monitoring_addresses: {address!r} is not an IP address") from None

    def environment(self) -> dict[str, str]:
        """The settings as SPOT_REDIS_* variables (lists joined with commas, flags as true or false)."""
        return {ENV_PREFIX + field.name.upper(): _text(getattr(self, field.name)) for field in fields(self)}

    def env_file(self) -> str:
        """host.env's text: one shell-quoted SPOT_REDIS_*=value line per setting."""
        return "".join(f"{name}={shlex.quote(value)}\n" for name, value in self.environment().items())

    @classmethod
    def from_environment(cls, variables: dict[str, str]) -> HostSettings:
        values = {}
        for field in fields(cls):
            name = ENV_PREFIX + field.name.upper()
            if name not in variables:
                if field.default is MISSING:
                    raise ValueError(f"the settings lack {name}")
                values[field.name] = field.default
                continue
            text = variables[name]
            if field.type == "bool":
                values[field.name] = parse_flag(name, text)
            elif field.type == "tuple[str, ...]":
                values[field.name] = tuple(item for item in text.split(",") if item)
            else:
                values[field.name] = text
        return cls(**values)

    @classmethod
    def read(cls, path: Path = SETTINGS_FILE) -> HostSettings:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ValueError(f"cannot read the host's settings {path}: {error.strerror}") from None
        return cls.from_environment(parse_env_lines(text))


def parse_env_lines(text: str) -> dict[str, str]:
    """SPOT_REDIS_*=value lines (optionally behind `export `), values shell-quoted; other lines are ignored."""
    settings = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("export ")
        if line.startswith(ENV_PREFIX) and "=" in line:
            name, _, value = line.partition("=")
            words = shlex.split(value)
            settings[name] = words[0] if words else ""
    return settings


def parse_flag(name: str, text: str) -> bool:
    """A flag setting as HostSettings writes it: exactly `true` or `false`."""
    if text not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, got {text!r}")
    return text == "true"


def _text(value: str | bool | tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return ",".join(value) if isinstance(value, tuple) else value


def _check_cidr(name: str, cidr: str) -> None:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as error:
        raise ValueError(f"{name}: {cidr!r} is not a network in CIDR notation ({error})") from None
    if "/" not in cidr or network.prefixlen == 0:
        raise ValueError(f"{name}: {cidr!r} must have an explicit prefix length, and not be /0")
