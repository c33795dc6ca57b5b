"""Redis killed without warning comes back with what it had acknowledged (AOF everysec on the data volume)."""

import re
import time
import uuid

KEYS = 1000


def main_pid(on_redis_host) -> int:
    return int(on_redis_host("systemctl show --property=MainPID --value redis-server").stdout.strip())


def wait_for_new_process(on_redis_host, app, old_pid: int, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = main_pid(on_redis_host)
        if pid not in (0, old_pid) and app("PING").stdout.strip() == "PONG":
            return pid
        time.sleep(0.5)
    raise AssertionError(f"redis-server did not come back within {timeout_s} s of kill -9")


def test_keys_survive_kill_9(app, admin, on_redis_host):
    # Only the AOF may save these keys: no RDB snapshot for this server's lifetime (the restart reads redis.conf again).
    assert admin("CONFIG", "SET", "save", "").stdout.strip() == "OK"
    keys = [f"test:durability:{uuid.uuid4().hex}:{i}" for i in range(KEYS)]
    pairs = [word for key in keys for word in (key, "v")]
    assert app("MSET", *pairs).stdout.strip() == "OK"
    time.sleep(2)  # appendfsync everysec: what was written a second ago is on disk
    persistence = admin("INFO", "persistence").stdout
    assert int(re.search(r"rdb_changes_since_last_save:(\d+)", persistence)[1]) >= KEYS, "an RDB snapshot has them"

    old_pid = main_pid(on_redis_host)
    on_redis_host(f"kill -9 {old_pid}")
    new_pid = wait_for_new_process(on_redis_host, app, old_pid)

    assert new_pid != old_pid
    assert app("EXISTS", *keys).stdout.strip() == str(KEYS)
    app("DEL", *keys)
