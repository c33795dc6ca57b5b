"""The data volume's layout: one directory per service, side by side under the volume's mount point.

    <mount>/redis/          Redis's `dir`: dump.rdb, appendonlydir/, the clean-stop marker
    <mount>/prometheus/     Prometheus's database (--storage.tsdb.path), where the host monitors itself
    <mount>/alertmanager/   Alertmanager's silences and notification log (--storage.path), likewise

A volume made by the first layout is Redis's `dir` itself: its files sit at the root. `migrate` moves them into
<mount>/redis without ever copying: each entry is renamed into a staging directory, <mount>/.redis.migrating, and
the staging directory is then renamed to <mount>/redis in one step. Redis's `dir` does not exist until that last
rename, so a Redis started after a crash in the middle finds no directory and does not start on half a dataset;
running `migrate` again finishes the move. A volume without <mount>/redis that holds nothing else (a new volume) gets
an empty <mount>/redis the same way.

Stdlib only, so that the redis role can run this file as a script on hosts without the agent:

    python3 layout.py status MOUNT     prints {"layout": "new" | "first" | "interrupted" | "current"} (no MOUNT: new)
    python3 layout.py migrate MOUNT    prints {"changed": true|false, "moved": [...], "layout": "current"}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REDIS_DIR = "redis"
PROMETHEUS_DIR = "prometheus"
ALERTMANAGER_DIR = "alertmanager"
STAGING_DIR = ".redis.migrating"
# Never Redis's: ext4's own directory, and this layout's directories.
NOT_REDIS = frozenset({"lost+found", REDIS_DIR, PROMETHEUS_DIR, ALERTMANAGER_DIR, STAGING_DIR})


class LayoutError(RuntimeError):
    """The volume holds something this module will not guess about; the message says what."""


def redis_dir(mount: str | Path) -> Path:
    return Path(mount) / REDIS_DIR


def prometheus_dir(mount: str | Path) -> Path:
    return Path(mount) / PROMETHEUS_DIR


def alertmanager_dir(mount: str | Path) -> Path:
    return Path(mount) / ALERTMANAGER_DIR


def first_layout_entries(mount: str | Path) -> list[Path]:
    """What a volume of the first layout holds at its root for Redis: every entry but lost+found and ours."""
    return sorted(entry for entry in Path(mount).iterdir() if entry.name not in NOT_REDIS)


def status(mount: str | Path) -> str:
    """current: <mount>/redis exists; interrupted: a move was cut short; first: Redis's files at the root; new."""
    mount = Path(mount)
    if not mount.is_dir():
        return "new"
    if redis_dir(mount).is_dir():
        return "current"
    if (mount / STAGING_DIR).is_dir():
        return "interrupted"
    return "first" if first_layout_entries(mount) else "new"


def find_redis_dir(mount: str | Path) -> Path:
    """Where Redis's files are now: <mount>/redis, or the root of a volume not migrated yet."""
    return redis_dir(mount) if status(mount) in ("current", "new") else Path(mount)


def migrate(mount: str | Path) -> list[str]:
    """Move a first-layout volume's Redis files into <mount>/redis (see the module's text); returns the names moved.

    Safe to run again at any point, including after a crash in the middle of an earlier run. Refuses (LayoutError)
    when a name is both at the root and in the staging directory, rather than choose one of them.
    """
    mount = Path(mount)
    if status(mount) == "current":
        return []
    staging = mount / STAGING_DIR
    root = mount.stat()
    if not staging.is_dir():
        staging.mkdir(mode=0o700)  # no one but root, until it is complete and renamed
    entries = first_layout_entries(mount)
    clashes = [entry.name for entry in entries if os.path.lexists(staging / entry.name)]
    if clashes:
        raise LayoutError(
            f"{', '.join(clashes)} are both in {mount} and in {staging}: compare them, keep one, then run again"
        )
    for entry in entries:
        os.rename(entry, staging / entry.name)
    fsync_dir(staging)
    fsync_dir(mount)
    # The owner and mode the root had as Redis's `dir` (redis:redis 0750 on a first-layout volume).
    os.chown(staging, root.st_uid, root.st_gid)
    os.chmod(staging, root.st_mode & 0o7777 if entries else 0o750)
    os.rename(staging, redis_dir(mount))
    fsync_dir(mount)
    return [entry.name for entry in entries]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("status", "migrate") or (argv[0] == "migrate" and not Path(argv[1]).is_dir()):
        print("usage: python3 layout.py status|migrate MOUNT (migrate: an existing directory)", file=sys.stderr)
        return 2
    command, mount = argv
    before = status(mount)
    if command == "status":
        print(json.dumps({"layout": before}))
        return 0
    try:
        moved = migrate(mount)
    except (LayoutError, OSError) as error:
        print(f"cannot migrate {mount}: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"changed": before != "current", "moved": moved, "layout": status(mount)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
