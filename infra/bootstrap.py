"""How the Spot host configures itself at boot: its user data, and the Ansible bundle it runs.

Pure Python (no Pulumi): the Pulumi program (infra/host.py, infra/bundle.py) calls these with resolved values.

The user data is `infra/host/bootstrap.sh` behind a block of `export SPOT_REDIS_...=...` lines made from
`HostSettings`. User data is readable by anyone with ec2:DescribeInstanceAttribute, so the settings hold nothing
secret: the host reads its secrets from SSM Parameter Store at run time (`SECRET_PARAMETERS`).
"""

from __future__ import annotations

import base64
import gzip
import io
import ipaddress
import re
import shlex
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent / "host"
BOOTSTRAP_SCRIPT = HOST_DIR / "bootstrap.sh"

# EC2 refuses user data above 16 KB (before base64; after gzip, which cloud-init undoes).
USER_DATA_LIMIT = 16 * 1024

ENV_PREFIX = "SPOT_REDIS_"

# The parameters under the stack's prefix that the host reads at boot (the Pulumi program creates them, see
# infra/parameters.py), and the Ansible variables each one becomes. bootstrap.sh holds the same table.
SECRET_PARAMETERS: dict[str, tuple[str, ...]] = {
    "redis/admin-password": ("redis_admin_password",),
    "redis/app-password": ("redis_app_password",),
    "redis/monitor-password": ("redis_monitor_password", "redis_exporter_redis_password"),
    "slack-webhook-url": ("alertmanager_slack_webhook_url",),
    "heartbeat-url": ("alertmanager_heartbeat_url",),
}

# What the Ansible bundle holds besides ansible/: the configuration that finds the roles and filters.
BUNDLE_TOP_LEVEL_FILES = ("ansible.cfg",)
_BUNDLE_EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".ansible", ".git"})
_BUNDLE_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".retry", ".swp", "~")
_BUNDLE_EXCLUDED_NAMES = frozenset({".DS_Store"})
# Fixed timestamp for every archive member: the same files make the same archive, byte for byte.
_ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)

_PIN_RE = re.compile(r"^\s*ansible-core\s*==\s*([0-9][0-9A-Za-z.+!-]*)\s*(?:#.*)?$", re.MULTILINE)
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*([A-Za-z0-9.+!-]*)$")


@dataclass(frozen=True)
class HostSettings:
    """What the host needs to know at boot. Nothing secret: it becomes EC2 user data."""

    stack: str
    region: str
    data_volume_id: str
    data_mount: str  # the redis role's redis_data_dir (/srv/redis)
    bundle_bucket: str
    bundle_key: str  # e.g. "bundles/ansible-<digest>.zip", a zip of bundle_files()
    parameter_prefix: str  # "/spot-redis/<stack>"
    cloudmap_service_id: str  # "srv-..."
    ansible_core_version: str  # requirements.txt's pin, see ansible_core_pin()
    admin_cidrs: tuple[str, ...]  # who else may reach the monitoring ports
    # Client networks besides the VPC's own CIDR blocks that the host firewall admits to Redis (peered VPCs, VPN):
    # the security group is the precise filter, the host firewall admits the VPC and these.
    redis_allowed_cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
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

    def environment(self) -> dict[str, str]:
        """The settings as the environment bootstrap.sh reads (lists joined with commas)."""
        return {
            ENV_PREFIX + field.name.upper(): ",".join(value) if isinstance(value, tuple) else value
            for field in fields(self)
            for value in (getattr(self, field.name),)
        }


def _check_cidr(name: str, cidr: str) -> None:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as error:
        raise ValueError(f"{name}: {cidr!r} is not a network in CIDR notation ({error})") from None
    if "/" not in cidr or network.prefixlen == 0:
        raise ValueError(f"{name}: {cidr!r} must have an explicit prefix length, and not be /0")


def render_user_data(settings: HostSettings) -> str:
    """`#!/bin/bash`, the settings as shell-quoted exports, then bootstrap.sh (without its shebang and comments)."""
    script = _without_comments(BOOTSTRAP_SCRIPT.read_text())
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.environment().items())
    text = (
        "#!/bin/bash\n"
        "# spot-redis host bootstrap (infra/host/bootstrap.sh), rendered by infra/bootstrap.py.\n"
        "# Settings only: the host reads its secrets from SSM Parameter Store at run time.\n"
        f"{exports}{script}"
    )
    encode_user_data(text)  # refuses what EC2 would refuse
    return text


def encode_user_data(text: str) -> str:
    """What the launch template carries: gzip (cloud-init unpacks it by itself), then base64. The script alone is
    close to EC2's 16 KB; compressed, it is about a third of that."""
    packed = gzip.compress(text.encode(), mtime=0)  # mtime=0: the same script gives the same launch template
    if len(packed) > USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(packed)} bytes compressed, above EC2's limit of {USER_DATA_LIMIT}")
    return base64.b64encode(packed).decode()


def decode_user_data(encoded: str) -> str:
    """The script from an instance's user data attribute (base64), compressed or not."""
    raw = base64.b64decode(encoded)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode(errors="replace")


def _without_comments(script: str) -> str:
    """The script without its shebang, comment lines and blank lines: EC2 takes 16 KB of user data.

    Only whole lines go (those whose first non-blank character is #); the script's heredocs are Python, where such
    lines are comments too. The commented original is infra/host/bootstrap.sh.
    """
    return "".join(
        line for line in script.splitlines(keepends=True) if line.strip() and not line.lstrip().startswith("#")
    )


def parse_user_data(text: str) -> dict[str, str]:
    """The SPOT_REDIS_* settings of a rendered user data (the inverse of render_user_data's export block)."""
    settings = {}
    for line in text.splitlines():
        if line.startswith(f"export {ENV_PREFIX}"):
            name, _, value = line.removeprefix("export ").partition("=")
            words = shlex.split(value)
            settings[name] = words[0] if words else ""
    return settings


def ansible_core_pin(requirements_text: str) -> str:
    """The version of `ansible-core==X` in requirements.txt: the host installs the same Ansible."""
    match = _PIN_RE.search(requirements_text)
    if not match:
        raise ValueError("requirements.txt pins no ansible-core version (expected a line `ansible-core==X.Y.Z`)")
    return match[1]


def bundle_files(repo_root: Path) -> dict[str, Path]:
    """Archive path -> file: what the host needs to run `ansible-playbook ansible/site.yml`.

    ansible.cfg (roles_path and filter_plugins are relative to it) and everything under ansible/ (site.yml,
    roles/, filter_plugins/), without caches and editor files. The host sets ANSIBLE_CONFIG to the bundle's
    ansible.cfg and runs the bundle's ansible/site.yml.
    """
    repo_root = Path(repo_root)
    files = {}
    for name in BUNDLE_TOP_LEVEL_FILES:
        path = repo_root / name
        if not path.is_file():
            raise FileNotFoundError(f"the bundle needs {path}")
        files[name] = path
    ansible_dir = repo_root / "ansible"
    if not (ansible_dir / "site.yml").is_file():
        raise FileNotFoundError(f"the bundle needs {ansible_dir / 'site.yml'}")
    for path in sorted(ansible_dir.rglob("*")):
        relative = path.relative_to(repo_root)
        if not path.is_file() or _excluded(relative):
            continue
        files[relative.as_posix()] = path
    return dict(sorted(files.items()))


def _excluded(relative: Path) -> bool:
    if any(part in _BUNDLE_EXCLUDED_DIRS for part in relative.parts[:-1]):
        return True
    return relative.name in _BUNDLE_EXCLUDED_NAMES or relative.name.endswith(_BUNDLE_EXCLUDED_SUFFIXES)


def bundle_archive(files: dict[str, Path]) -> bytes:
    """A zip of bundle_files(): deterministic (sorted members, fixed timestamps), so that its hash is a key."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for archive_path in sorted(files):
            info = zipfile.ZipInfo(archive_path, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, Path(files[archive_path]).read_bytes())
    return buffer.getvalue()
