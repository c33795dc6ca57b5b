"""Monitoring in the lab: Prometheus scrapes every target, Alertmanager tells the Slack stand-in that Redis is down
and that it is back, and pings the dead-man's switch while all is well."""

import json
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from lab.topology import node
from lab.webhook_sink import received, slack_titles
from tests.lab.helpers import get_json, post_json, wait_for

ALERT_BOUND_S = 180  # generous: the benchmark (make bench-alerts) measures; the goal is under 60 s


def slack_message(folder: Path, since_ns: int, title: str) -> str | None:
    """The first Slack message since since_ns whose title starts with title, e.g. "[FIRING] RedisDown on redis-1"."""
    return next((found for _, found in slack_titles(folder, since_ns) if found.startswith(title)), None)


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
        wait_for(
            "a RedisDown firing message",
            lambda: slack_message(slack, stopped_at, "[FIRING] RedisDown on redis-1"),
            ALERT_BOUND_S,
        )
    finally:
        started_at = time.time_ns()
        on_redis_host("systemctl start redis-server")
    wait_for(
        "a RedisDown resolved message",
        lambda: slack_message(slack, started_at, "[RESOLVED] RedisDown on redis-1"),
        ALERT_BOUND_S,
    )
    critical = [body for _, body in received(slack, stopped_at) if "[FIRING] RedisDown" in json.dumps(body)]
    assert critical[0]["attachments"][0]["color"] == "danger"


def test_dead_mans_switch_is_pinged_while_healthy(lab):
    """Two new pings from monitor-1's Alertmanager (solo-1's pings the same sink), one heartbeat interval apart."""
    heartbeat, since = Path(lab["LAB_HEARTBEAT_DIR"]), time.time_ns()
    monitor = "//monitor-1:"  # Alertmanager's external URL names its host

    def two_new_pings():
        pings = [
            body
            for _, body in received(heartbeat, since)
            if monitor in body.get("externalURL", "") and body.get("commonLabels", {}).get("alertname") == "Watchdog"
        ]
        return pings if len(pings) >= 2 else None

    pings = wait_for("two new Watchdog pings", two_new_pings, bound_s=150, every_s=5)
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


ROUTES = {
    "Watchdog to the dead-man's switch only": ("alertname=Watchdog severity=info", "heartbeat"),
    "critical to Slack": ("alertname=RedisDown severity=critical host=redis-1", "slack-critical"),
    "warning to Slack": ("alertname=RedisMemoryNearMax severity=warning host=redis-1", "slack-warning"),
    "info not sent": ("alertname=SomethingToKnow severity=info host=redis-1", "discard"),
}


@pytest.mark.parametrize("labels, receiver", ROUTES.values(), ids=ROUTES.keys())
def test_alertmanager_routes_by_severity(on_host, labels, receiver):
    test = f"amtool config routes test --config.file=/etc/prometheus/alertmanager.yml {labels}"
    assert on_host("monitor-1", test).stdout.strip() == receiver


def post_alerts(lab, *alerts: dict) -> None:
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
    alerts = [{"labels": labels, "endsAt": ends} for labels in alerts]
    assert post_json(f"{lab['ALERTMANAGER_URL']}/api/v2/alerts", alerts) == 200


INHIBITIONS = {
    "Redis down silences the Redis alerts that follow": (
        {"alertname": "RedisDown", "severity": "critical"},
        {"alertname": "RedisRejectedConnections", "severity": "warning"},
    ),
    "an unreachable host silences its warnings": (
        {"alertname": "TargetDown", "severity": "critical", "job": "node"},
        {"alertname": "HostMemoryLow", "severity": "warning"},
    ),
    "critical silences the warning of the same disk": (
        {"alertname": "DiskAlmostFull", "severity": "critical", "mountpoint": "/srv/redis"},
        {"alertname": "DiskAlmostFull", "severity": "warning", "mountpoint": "/srv/redis"},
    ),
}


@pytest.mark.parametrize("cause, consequence", INHIBITIONS.values(), ids=INHIBITIONS.keys())
def test_alertmanager_inhibits_the_consequences_of_a_cause(lab, cause, consequence):
    """Alerts for a host that does not exist (their Slack messages name it), posted straight to Alertmanager."""
    host = f"ghost-{time.time_ns()}"
    post_alerts(lab, {**cause, "host": host}, {**consequence, "host": host}, {**consequence, "host": f"{host}-other"})

    # The consequence only (its alertname and severity): the cause may share its alertname (DiskAlmostFull).
    query = urllib.parse.urlencode(
        [("filter", f'{label}="{consequence[label]}"') for label in ("alertname", "severity")]
    )

    def states():
        alerts = get_json(f"{lab['ALERTMANAGER_URL']}/api/v2/alerts?{query}")
        found = {a["labels"]["host"]: a["status"] for a in alerts if a["labels"]["host"].startswith(host)}
        return found if len(found) == 2 else None

    found = wait_for("the alerts to be in Alertmanager", states, bound_s=30, every_s=1)
    assert found[host]["inhibitedBy"], found
    assert not found[f"{host}-other"]["inhibitedBy"], "an alert of another host was silenced"
