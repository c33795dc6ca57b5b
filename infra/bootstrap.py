"""How the Spot host configures itself at boot: its user data, and the Ansible bundle it runs.

Pure Python (no Pulumi): the Pulumi program (infra/compute.py, infra/bundle.py) calls these with resolved values.

The user data writes `HostSettings` (spot_redis/agent/settings.py, the one definition the host agent reads too) to
/etc/spot-redis/host.env, then runs `infra/host/user-data.sh`, a short shim that fetches the bundle and starts the
host agent's `boot`. User data is readable by anyone with ec2:DescribeInstanceAttribute, so the settings hold nothing
secret: the host reads its secrets from SSM Parameter Store at run time.
"""

from __future__ import annotations

import base64
import gzip
import io
import re
import zipfile
from pathlib import Path

from spot_redis.agent.settings import (  # noqa: F401 - re-exported: the program and the inventory import them here
    SECRET_PARAMETERS,
    SETTINGS_FILE,
    HostSettings,
    parse_env_lines,
)
from spot_redis.events import BOOTSTRAP_FAILED, SOURCE

HOST_DIR = Path(__file__).resolve().parent / "host"
SHIM_SCRIPT = HOST_DIR / "user-data.sh"

# EC2 refuses user data above 16 KB (before base64; after gzip, which cloud-init undoes).
USER_DATA_LIMIT = 16 * 1024

# What the Ansible bundle holds besides ansible/: the configuration that finds the roles and filters, and the
# host agent with the event contract it shares with the Lambdas.
BUNDLE_TOP_LEVEL_FILES = ("ansible.cfg",)
BUNDLE_PACKAGES = ("spot_redis",)
_BUNDLE_EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".ansible", ".git"})
_BUNDLE_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".retry", ".swp", "~")
_BUNDLE_EXCLUDED_NAMES = frozenset({".DS_Store"})
# Fixed timestamp for every archive member: the same files make the same archive, byte for byte.
_ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)

_PIN_RE = re.compile(r"^\s*ansible-core\s*==\s*([0-9][0-9A-Za-z.+!-]*)\s*(?:#.*)?$", re.MULTILINE)


def render_user_data(settings: HostSettings) -> str:
    """`#!/bin/bash`, the settings into /etc/spot-redis/host.env, then the shim (without its comment lines)."""
    shim = _without_comments(SHIM_SCRIPT.read_text())
    shim = shim.replace("@SOURCE@", SOURCE).replace("@BOOTSTRAP_FAILED@", BOOTSTRAP_FAILED.detail_type)
    text = (
        "#!/bin/bash\n"
        "# spot-redis host user data (infra/host/user-data.sh), rendered by infra/bootstrap.py.\n"
        "# Settings only: the host reads its secrets from SSM Parameter Store at run time.\n"
        f"install -d -m 0755 {SETTINGS_FILE.parent}\n"
        f"cat >{SETTINGS_FILE} <<'SETTINGS'\n{settings.env_file()}SETTINGS\n"
        f"{shim}"
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
    lines are comments too. The commented original is infra/host/user-data.sh.
    """
    return "".join(
        line for line in script.splitlines(keepends=True) if line.strip() and not line.lstrip().startswith("#")
    )


def parse_user_data(text: str) -> dict[str, str]:
    """The SPOT_REDIS_* settings of a rendered user data (the inverse of render_user_data's settings block)."""
    return parse_env_lines(text)


def ansible_core_pin(requirements_text: str) -> str:
    """The version of `ansible-core==X` in requirements.txt: the host installs the same Ansible."""
    match = _PIN_RE.search(requirements_text)
    if not match:
        raise ValueError("requirements.txt pins no ansible-core version (expected a line `ansible-core==X.Y.Z`)")
    return match[1]


def bundle_files(repo_root: Path) -> dict[str, Path]:
    """Archive path -> file: what the host needs to run `ansible-playbook ansible/site.yml`.

    ansible.cfg (roles_path and filter_plugins are relative to it), everything under ansible/ (site.yml,
    roles/, filter_plugins/) and the spot_redis package (the host agent), without caches and editor files. The host
    runs `python3 -m spot_redis.agent` from the bundle's root, which sets ANSIBLE_CONFIG to the bundle's ansible.cfg.
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
    trees = [ansible_dir, *(repo_root / package for package in BUNDLE_PACKAGES)]
    for path in sorted(path for tree in trees for path in tree.rglob("*")):
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
