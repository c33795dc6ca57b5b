"""Monitoring in the lab: Prometheus scrapes every target, Alertmanager tells the Slack stand-in that Redis is down
and that it is back, and pings the dead-man's switch while all is well."""

import json
import socket
import time
from pathlib import Path

import pytest

from lab.topology import node
from lab.webhook_sink import received
from tests.lab.helpers import get_json, wait_for

ALERT_BOUND_S = 180  # generous: the benchmark (make bench-alerts) measures; the goal is under 60 s


def slack_message_about(folder: Path, since_ns: int, alertname: str, status: str):
    for _, body in received(folder, since_ns):
        text = json.dumps(body)
        if alertname in text and status in text:
            return body
    return None


def test_every_prometheus_target_is_up(lab):
    def all_up():
        targets = get_json(f"{lab['PROMETHEUS_URL']}/api/v1/targets")["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every target up", all_up, bound_s=90)
    assert {t["labels"]["job"] for t in targets} == {"prometheus", "node", "redis"}
    assert {t["labels"]["host"] for t in targets if t["labels"]["job"] != "prometheus"} == {"redis-1"}


def test_alert_rules_are_loaded(lab):
    groups = get_json(f"{lab['PROMETHEUS_URL']}/api/v1/rules")["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"RedisDown", "TargetDown", "Watchdog", "DiskWillFillWithin24h"} <= names


def test_redis_down_reaches_slack_then_its_recovery(lab, on_redis_host):
    slack = Path(lab["LAB_SLACK_DIR"])
    stopped_at = time.time_ns()
    on_redis_host("systemctl stop redis-server")
    try:
        firing = wait_for(
            "a RedisDown firing message",
            lambda: slack_message_about(slack, stopped_at, "RedisDown", "FIRING"),
            ALERT_BOUND_S,
        )
        assert "critical" in json.dumps(firing).lower()
        assert "redis-1" in json.dumps(firing)
    finally:
        started_at = time.time_ns()
        on_redis_host("systemctl start redis-server")
    wait_for(
        "a RedisDown resolved message",
        lambda: slack_message_about(slack, started_at, "RedisDown", "RESOLVED"),
        ALERT_BOUND_S,
    )


def test_dead_mans_switch_is_pinged_while_healthy(lab):
    heartbeat = Path(lab["LAB_HEARTBEAT_DIR"])

    def two_pings():
        pings = [body for _, body in received(heartbeat) if "Watchdog" in json.dumps(body)]
        return pings if len(pings) >= 2 else None

    pings = wait_for("two Watchdog pings", two_pings, bound_s=150, every_s=5)
    assert all(ping["status"] == "firing" for ping in pings)


MONITORING_PORTS = [("redis-1", 9100), ("redis-1", 9121), ("monitor-1", 9090), ("monitor-1", 9093)]


@pytest.mark.parametrize("host, port", MONITORING_PORTS, ids=[f"{h}:{p}" for h, p in MONITORING_PORTS])
def test_outsider_reaches_no_monitoring_port(lab, tcp_probe, host, port):
    assert tcp_probe(lab["LAB_OUTSIDER_NETNS"], node(host).address, port) == "timeout"


@pytest.mark.parametrize("host, port", MONITORING_PORTS, ids=[f"{h}:{p}" for h, p in MONITORING_PORTS])
def test_admin_network_reaches_every_monitoring_port(host, port):
    """The machine (the lab's admin network) does: what stops the outsider is the firewall."""
    socket.create_connection((node(host).address, port), timeout=3).close()


def test_alertmanager_has_no_cluster_port_open():
    """Clustering is off: nothing listens on 9094 (the firewall does not cover it, so this is the listener itself)."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((node("monitor-1").address, 9094), timeout=3)
