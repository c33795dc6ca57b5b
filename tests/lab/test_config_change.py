"""A configuration change restarts Redis and checks that it answers (an empty save list really turns RDB off);
Prometheus and Alertmanager reload instead."""

from tests.lab.helpers import get_json


def main_pid(on_redis_host) -> str:
    return on_redis_host("systemctl show --property=MainPID --value redis-server").stdout.strip()


def test_empty_save_list_turns_rdb_off_through_a_checked_restart(converge_with, admin, on_redis_host):
    before = main_pid(on_redis_host)
    with converge_with("redis", {"redis_save": []}) as changed:
        assert "RUNNING HANDLER [redis : Restart redis-server]" in changed.output
        assert "RUNNING HANDLER [redis : Check that redis-server answers]" in changed.output
        assert main_pid(on_redis_host) != before
        assert on_redis_host("grep -x 'save \"\"' /etc/redis/redis.conf", check=False).returncode == 0
        assert admin("CONFIG", "GET", "save").stdout.splitlines() == ["save", ""]
    assert admin("CONFIG", "GET", "save").stdout.splitlines() == ["save", "900 1 300 10 60 10000"]


def test_monitoring_config_change_reloads_without_restarting(converge_with, on_host, lab):
    """Prometheus and Alertmanager take a new configuration by reload: same process, new settings in force."""
    services = "prometheus prometheus-alertmanager"
    pids = on_host("monitor-1", f"systemctl show --property=MainPID --value {services}").stdout
    settings = {"prometheus_evaluation_interval": "16s", "alertmanager_group_interval": "31s"}
    with converge_with("monitoring", settings) as changed:
        assert "RUNNING HANDLER [prometheus : Reload prometheus]" in changed.output
        assert "RUNNING HANDLER [alertmanager : Reload prometheus-alertmanager]" in changed.output
        assert "RUNNING HANDLER [prometheus : Restart" not in changed.output
        assert on_host("monitor-1", f"systemctl show --property=MainPID --value {services}").stdout == pids
        assert "evaluation_interval: 16s" in get_json(f"{lab['PROMETHEUS_URL']}/api/v1/status/config")["data"]["yaml"]
        assert "group_interval: 31s" in get_json(f"{lab['ALERTMANAGER_URL']}/api/v2/status")["config"]["original"]
