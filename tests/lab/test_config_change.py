"""A configuration change restarts Redis and checks that it answers (an empty save list really turns RDB off);
Prometheus and Alertmanager reload instead."""

from tests.lab.helpers import get_json


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


def test_monitoring_config_change_reloads_without_restarting(converge, on_host, lab, tmp_path):
    """Prometheus and Alertmanager take a new configuration by reload: same process, new settings in force."""
    services = "prometheus prometheus-alertmanager"
    pids = on_host("monitor-1", f"systemctl show --property=MainPID --value {services}").stdout
    changed_settings = tmp_path / "changed.json"
    changed_settings.write_text('{"prometheus_evaluation_interval": "16s", "alertmanager_group_interval": "31s"}')

    changed = converge("--limit", "monitoring", "--extra-vars", f"@{changed_settings}")
    try:
        assert changed.returncode == 0, changed.output[-3000:]
        assert "RUNNING HANDLER [prometheus : Reload prometheus]" in changed.output
        assert "RUNNING HANDLER [alertmanager : Reload prometheus-alertmanager]" in changed.output
        assert "RUNNING HANDLER [prometheus : Restart" not in changed.output
        assert on_host("monitor-1", f"systemctl show --property=MainPID --value {services}").stdout == pids
        assert "evaluation_interval: 16s" in get_json(f"{lab['PROMETHEUS_URL']}/api/v1/status/config")["data"]["yaml"]
        assert "group_interval: 31s" in get_json(f"{lab['ALERTMANAGER_URL']}/api/v2/status")["config"]["original"]
    finally:
        restored = converge("--limit", "monitoring")
    assert restored.returncode == 0, restored.output[-3000:]
