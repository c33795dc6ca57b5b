"""A configuration change restarts Redis and checks that it answers; an empty save list really turns RDB off."""


def main_pid(on_redis_host) -> str:
    return on_redis_host("systemctl show --property=MainPID --value redis-server").stdout.strip()


def test_empty_save_list_turns_rdb_off_through_a_checked_restart(converge, admin, on_redis_host, tmp_path):
    before = main_pid(on_redis_host)
    no_rdb = tmp_path / "no-rdb.json"
    no_rdb.write_text('{"redis_save": []}')

    changed = converge("--limit", "redis", "--extra-vars", f"@{no_rdb}")
    try:
        assert changed.returncode == 0, changed.output[-3000:]
        assert "RUNNING HANDLER [redis : Restart redis-server]" in changed.output
        assert "RUNNING HANDLER [redis : Check that redis-server answers]" in changed.output
        assert main_pid(on_redis_host) != before
        assert on_redis_host("grep -x 'save \"\"' /etc/redis/redis.conf", check=False).returncode == 0
        assert admin("CONFIG", "GET", "save").stdout.splitlines() == ["save", ""]
    finally:
        restored = converge("--limit", "redis")
    assert restored.returncode == 0, restored.output[-3000:]
    assert admin("CONFIG", "GET", "save").stdout.splitlines() == ["save", "900 1 300 10 60 10000"]
