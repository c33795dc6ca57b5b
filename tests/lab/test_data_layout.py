"""A data volume of the first layout (it was Redis's `dir`: Redis's files at its root) is moved in place by a push of
the redis role (solo-1, converged by inventories/lab-solo): the keys saved before are served after, nothing but the
layout's directories is left at the root, and a second converge changes nothing. (The host agent's own move, at
boot, is tested in tests/unit/agent/test_boot.py and tests/unit/agent/test_layout.py.)"""

import uuid

import pytest

from lab import control

SOLO_INVENTORY = str(control.REPO / "inventories" / "lab-solo")
ADMIN_CLI = 'set -a && . /etc/spot-redis/redis-admin.env && set +a && redis-cli --user "$REDIS_ADMIN_USER" '
# What the first layout looked like: Redis's files at the root, which was redis:redis 0750.
BACK_TO_THE_FIRST_LAYOUT = (
    "systemctl stop redis-server && cd /srv/redis && find redis -mindepth 1 -maxdepth 1 -exec mv -t . {} + "
    "&& rmdir redis && chown redis:redis /srv/redis && chmod 0750 /srv/redis"
)


@pytest.fixture(scope="module")
def solo(converge):
    first = converge(inventory=SOLO_INVENTORY)
    assert first.returncode == 0, first.output[-3000:]


def test_a_first_layout_volume_is_moved_in_place_by_a_push(solo, converge, on_host):
    def redis(command: str) -> str:
        return on_host("solo-1", ADMIN_CLI + command).stdout.strip()

    value = uuid.uuid4().hex
    assert redis(f"SET test:layout {value}") == "OK"
    assert redis("SAVE") == "OK"
    on_host("solo-1", BACK_TO_THE_FIRST_LAYOUT)
    at_the_root = set(on_host("solo-1", "ls -A /srv/redis").stdout.split())
    assert {"dump.rdb", "appendonlydir"} <= at_the_root and "redis" not in at_the_root

    moved = converge(inventory=SOLO_INVENTORY)
    assert moved.returncode == 0, moved.output[-3000:]
    assert "Move Redis's files into redis_data_dir" in moved.output

    assert redis("GET test:layout") == value
    assert set(on_host("solo-1", "ls -A /srv/redis").stdout.split()) == {
        "lost+found",
        "redis",
        "prometheus",
        "alertmanager",
    }
    assert on_host("solo-1", "stat -c '%U:%G %a' /srv/redis /srv/redis/redis").stdout.split("\n")[:2] == [
        "root:root 755",
        "redis:redis 750",
    ]
    again = converge(inventory=SOLO_INVENTORY)
    assert again.returncode == 0, again.output[-3000:]
    assert again.recap()["solo-1"]["changed"] == 0
    redis("DEL test:layout")
