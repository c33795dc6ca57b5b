"""A monitoring host, as the prometheus and alertmanager roles leave it."""

import json
import time

import pytest
import yaml

GROUP = "monitoring"
PROMETHEUS_DEFAULT = "/etc/default/prometheus"
ALERTMANAGER_DEFAULT = "/etc/default/prometheus-alertmanager"
ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml"
SLACK_URL_FILE = "/etc/prometheus/alertmanager-slack-webhook-url"
RULES_DIR = "/etc/prometheus/rules"
SERVICES = {"prometheus": PROMETHEUS_DEFAULT, "prometheus-alertmanager": ALERTMANAGER_DEFAULT}
CLUSTER_PORT = 9094


def url(address: str, port: int, path: str) -> str:
    return f"http://{f'[{address}]' if ':' in address else address}:{port}{path}"


# Function-scoped: module-scoped fixtures would run before the group check skips the module on other hosts.
@pytest.fixture
def prometheus(listen_address, http_get):
    """GET a Prometheus API path from the host, as parsed JSON."""
    address, port = listen_address(PROMETHEUS_DEFAULT)

    def get(path: str):
        status, body = http_get(url(address, port, path))
        assert status == 200, body
        return json.loads(body)

    return get


@pytest.fixture
def alertmanager_config(host, as_root):
    with as_root():
        return yaml.safe_load(host.file(ALERTMANAGER_CONFIG).content_string)


def test_alertmanager_cluster_port_is_closed(host, listening_on):
    pid = host.check_output("systemctl show --property=MainPID --value prometheus-alertmanager")
    args = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    assert "--cluster.listen-address=" in args, f"clustering is not turned off: {args}"
    assert listening_on(CLUSTER_PORT, "tcp") == set()
    assert listening_on(CLUSTER_PORT, "udp") == set()


@pytest.mark.parametrize(
    "path, owner, group, mode",
    [
        (PROMETHEUS_DEFAULT, "root", "root", 0o644),
        (ALERTMANAGER_DEFAULT, "root", "root", 0o644),
        ("/etc/prometheus/prometheus.yml", "root", "root", 0o644),
        (RULES_DIR, "root", "root", 0o755),
        # They hold secrets (the heartbeat URL, the Slack URL): readable by Alertmanager's group, not the world.
        (ALERTMANAGER_CONFIG, "root", "prometheus", 0o640),
        (SLACK_URL_FILE, "root", "prometheus", 0o640),
    ],
)
def test_files_have_their_owner_and_mode(owner_group_mode, path, owner, group, mode):
    assert owner_group_mode(path) == (owner, group, mode)


def test_alertmanager_runs_as_the_group_that_reads_its_secrets(host):
    user = host.check_output("systemctl show --property=User --value prometheus-alertmanager")
    assert "prometheus" in host.user(user).groups


# Failure messages name secrets, never show them: a comparison is reduced to a boolean before it is asserted.
def test_slack_url_is_only_in_its_own_file(host, as_root, alertmanager_config):
    with as_root():
        slack_url = host.file(SLACK_URL_FILE).content_string.strip()
        config_text = host.file(ALERTMANAGER_CONFIG).content_string
    assert slack_url.startswith("https://")
    in_config = slack_url in config_text
    assert not in_config, f"the Slack webhook URL is in {ALERTMANAGER_CONFIG}"
    slack_configs = [c for r in alertmanager_config["receivers"] for c in r.get("slack_configs", [])]
    assert slack_configs
    assert all(c.get("api_url_file") == SLACK_URL_FILE and "api_url" not in c for c in slack_configs)


def test_watchdog_goes_first_and_only_to_the_dead_mans_switch(alertmanager_config):
    first = alertmanager_config["route"]["routes"][0]
    assert first["matchers"] == ['alertname="Watchdog"']
    assert not first.get("continue", False)
    receiver = next(r for r in alertmanager_config["receivers"] if r["name"] == first["receiver"])
    assert [c["url"].startswith("https://") for c in receiver["webhook_configs"]] == [True]
    assert "slack_configs" not in receiver


def test_configurations_pass_their_own_checks(host, as_root):
    with as_root():
        host.check_output("promtool check config /etc/prometheus/prometheus.yml")
        host.check_output(f"amtool check-config {ALERTMANAGER_CONFIG}")


@pytest.mark.parametrize("service, default_file", SERVICES.items())
def test_service_is_ready(listen_address, http_get, service, default_file):
    address, port = listen_address(default_file)
    assert http_get(url(address, port, "/-/ready"))[0] == 200, f"{service} is not ready"


def test_every_target_is_up_and_labelled_with_its_host(prometheus):
    deadline = time.monotonic() + 60  # a target is "unknown" until its first scrape (every 15 s)
    while True:
        targets = prometheus("/api/v1/targets")["data"]["activeTargets"]
        if all(t["health"] != "unknown" for t in targets) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert targets, "Prometheus has no targets"
    down = {t["scrapeUrl"]: t["lastError"] for t in targets if t["health"] != "up"}
    assert not down, f"targets not up: {down}"
    assert {t["labels"]["job"] for t in targets} >= {"prometheus", "node", "redis"}
    assert all(t["labels"].get("host") for t in targets), "a target without a host label"


def test_every_rule_group_is_loaded(host, prometheus):
    expected = set()
    for path in host.file(RULES_DIR).listdir():
        expected |= {g["name"] for g in yaml.safe_load(host.file(f"{RULES_DIR}/{path}").content_string)["groups"]}
    assert expected, f"no rule groups in {RULES_DIR}"
    loaded = {g["name"] for g in prometheus("/api/v1/rules")["data"]["groups"]}
    assert expected <= loaded


def test_prometheus_sends_alerts_to_alertmanager(prometheus, listen_address):
    address, port = listen_address(ALERTMANAGER_DEFAULT)
    active = [a["url"] for a in prometheus("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]]
    assert active, "Prometheus knows no Alertmanager"
    assert url(address, port, "/api/v2/alerts") in active


def running_flag(host, service: str, flag: str) -> str:
    """The value of --flag=value on the running service's command line."""
    pid = host.check_output(f"systemctl show --property=MainPID --value {service}")
    args = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    values = [arg.removeprefix(f"{flag}=") for arg in args if arg.startswith(f"{flag}=")]
    assert len(values) == 1, f"{service} runs without one {flag}: {args}"
    return values[0]


def redis_data_mount(host, as_root) -> str | None:
    """The mount point of the data volume Redis writes to on this host, if Redis runs here on one."""
    with as_root():
        if not host.file("/etc/redis/redis.conf").exists:
            return None
        conf = host.file("/etc/redis/redis.conf").content_string
    redis_dir = next(line.split()[1].strip('"') for line in conf.splitlines() if line.startswith("dir "))
    mount = host.check_output(f"findmnt --noheadings --output TARGET --target {redis_dir}")
    return None if mount == "/" else mount


@pytest.mark.parametrize(
    "service, flag, directory",
    [
        ("prometheus", "--storage.tsdb.path", "prometheus"),
        ("prometheus-alertmanager", "--storage.path", "alertmanager"),
    ],
)
def test_state_is_on_the_data_volume_beside_redis_where_there_is_one(
    host, as_root, owner_group_mode, service, flag, directory
):
    """On the stack's host (Redis on a data volume, and its monitoring), the history and alert state outlive the host:
    <mount>/prometheus and <mount>/alertmanager beside <mount>/redis. Elsewhere they stay where Debian puts them."""
    path = running_flag(host, service, flag)
    assert owner_group_mode(path) == ("prometheus", "prometheus", 0o750)
    mount = redis_data_mount(host, as_root)
    if mount is None:
        assert host.check_output(f"findmnt --noheadings --output TARGET --target {path}") == "/"
        return
    assert path == f"{mount}/{directory}"
    assert host.check_output(f"findmnt --noheadings --output TARGET --target {path}") == mount


def test_prometheus_keeps_a_size_based_retention(host):
    assert running_flag(host, "prometheus", "--storage.tsdb.retention.size").removesuffix("B")[:-1].isdigit()
