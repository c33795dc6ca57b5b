"""What the data volume holds, said precisely: complete, crash or empty.

A clean stop of Redis (the watcher's drain, or Redis's own save when systemd stops it) leaves a marker at the root
of the data volume. It names the instance, the time of the last save, and a fingerprint (name, size, mtime) of
every data file. At boot, the data files are compared with the marker:

- no data file at all                          -> empty
- data, and a marker whose fingerprint matches -> complete (nothing was written after the clean stop)
- data, and no marker or one that does not     -> crash (AOF everysec: at most the last second may be missing)

Redis clears the marker when it starts (ExecStartPre, see the spot_host role), so a crash after a restart never
finds a stale one; the fingerprint catches any write that still slipped past.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from spot_redis.agent.layout import fsync_dir
from spot_redis.events import Dataset, iso_time

MARKER_NAME = ".spot-redis-clean-stop.json"
# Not Redis data: the marker itself, ext4's lost+found, and our temporary files.
_NOT_DATA = {MARKER_NAME, "lost+found"}


@dataclass(frozen=True)
class Marker:
    instance_id: str
    saved_at: str  # ISO 8601, UTC: the newest data file's modification time
    files: dict[str, list[int]]  # relative path -> [size, mtime_ns]
    keys: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"instance-id": self.instance_id, "saved-at": self.saved_at, "files": self.files, "keys": self.keys},
            sort_keys=True,
        )


@dataclass(frozen=True)
class Decision:
    dataset: Dataset
    marker: Marker | None = None  # the matching marker, for complete
    reason: str = ""


def data_files(data_dir: Path) -> dict[str, list[int]]:
    """Every regular file Redis keeps in data_dir (dump.rdb, appendonlydir/...), with its size and mtime_ns."""
    found = {}
    for path in sorted(Path(data_dir).rglob("*")):
        relative = path.relative_to(data_dir)
        if relative.parts[0] in _NOT_DATA or path.name.startswith(".spot-redis") or not path.is_file():
            continue
        stat = path.stat()
        found[relative.as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return found


def has_data(files: dict[str, list[int]]) -> bool:
    return any(size > 0 for size, _ in files.values())


def read_marker(data_dir: Path) -> Marker | None:
    try:
        raw = json.loads((Path(data_dir) / MARKER_NAME).read_text())
        return Marker(
            instance_id=str(raw["instance-id"]),
            saved_at=str(raw["saved-at"]),
            files={str(k): [int(v[0]), int(v[1])] for k, v in raw["files"].items()},
            keys=raw.get("keys") if isinstance(raw.get("keys"), int) else None,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def write_marker(data_dir: Path, instance_id: str, keys: int | None = None) -> Marker:
    """The clean-stop marker for the files as they are now; written atomically and synced."""
    data_dir = Path(data_dir)
    files = data_files(data_dir)
    newest = max((mtime for _, mtime in files.values()), default=0)
    saved_at = iso_time(datetime.fromtimestamp(newest / 1e9, UTC))
    marker = Marker(instance_id=instance_id, saved_at=saved_at, files=files, keys=keys)
    tmp = data_dir / f"{MARKER_NAME}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as handle:
        handle.write(marker.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, data_dir / MARKER_NAME)
    fsync_dir(data_dir)
    return marker


def clear_marker(data_dir: Path) -> bool:
    """Remove the marker (Redis is about to write again); True when there was one."""
    try:
        (Path(data_dir) / MARKER_NAME).unlink()
    except FileNotFoundError:
        return False
    fsync_dir(Path(data_dir))
    return True


def decide(data_dir: Path) -> Decision:
    files = data_files(data_dir)
    if not has_data(files):
        return Decision(Dataset.EMPTY, reason="no Redis data file on the volume")
    marker = read_marker(data_dir)
    if marker is None:
        return Decision(Dataset.CRASH, reason="data without a clean-stop marker")
    if marker.files != files:
        changed = sorted(set(marker.files) ^ set(files) | {k for k in files if marker.files.get(k) != files[k]})
        return Decision(Dataset.CRASH, reason=f"data changed after the clean-stop marker: {', '.join(changed)}")
    return Decision(Dataset.COMPLETE, marker=marker, reason=f"clean stop by {marker.instance_id} at {marker.saved_at}")
