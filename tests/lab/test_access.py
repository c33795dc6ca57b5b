"""Who can reach the lab's Redis, and what the application user may do."""

import shlex
import uuid

import pytest


def test_app_user_can_set_and_get(app):
    key, value = f"test:access:{uuid.uuid4().hex}", uuid.uuid4().hex
    assert app("SET", key, value, "EX", "60").stdout.strip() == "OK"
    assert app("GET", key).stdout.strip() == value


def test_no_credentials_gives_noauth(client):
    result = client("GET", "anything")
    assert "NOAUTH" in result.stdout + result.stderr


def test_wrong_password_is_refused(lab, client):
    result = client("PING", user=lab["REDIS_APP_USER"], password="not-the-password-at-all")  # noqa: S106
    assert "WRONGPASS" in result.stdout + result.stderr


def test_app_user_cannot_flushall(app):
    result = app("FLUSHALL")
    assert "NOPERM" in result.stdout + result.stderr


def test_app_user_cannot_use_config(app):
    for subcommand in ("GET", "SET"):
        result = app("CONFIG", subcommand, "maxmemory", *(["1"] if subcommand == "SET" else []))
        assert "NOPERM" in result.stdout + result.stderr, subcommand


ADMINISTRATION = (
    ["FLUSHALL"],
    ["CONFIG", "SET", "maxmemory", "1"],
    ["SHUTDOWN"],
    ["DEBUG", "SLEEP", "0"],
    ["ACL", "LIST"],
    ["MODULE", "LIST"],
    ["MONITOR"],
    ["REPLICAOF", "NO", "ONE"],
    ["SLAVEOF", "NO", "ONE"],
)


@pytest.mark.parametrize("command", ADMINISTRATION, ids=lambda c: " ".join(c[:2]))
def test_app_user_acl_denies_server_administration(lab, admin, command):
    """ACL DRYRUN asks the ACL itself (DEBUG and MODULE are also switched off in the config, which answers first)."""
    result = admin("ACL", "DRYRUN", lab["REDIS_APP_USER"], *command)
    assert "no permissions" in result.stdout, result.stdout + result.stderr


def test_app_user_acl_allows_ordinary_commands(lab, admin):
    for command in (["GET", "k"], ["SET", "k", "v"], ["FLUSHDB"], ["INFO"], ["EVAL", "return 1", "0"]):
        result = admin("ACL", "DRYRUN", lab["REDIS_APP_USER"], *command)
        assert result.stdout.strip() == "OK", (command, result.stdout)


@pytest.mark.parametrize("command", [["GET", "k"], ["SET", "k", "v"], ["KEYS", "*"], ["CONFIG", "SET", "save", ""]])
def test_monitoring_user_reads_no_keys_and_changes_nothing(lab, admin, command):
    result = admin("ACL", "DRYRUN", lab["REDIS_MONITOR_USER"], *command)
    assert "no permissions" in result.stdout, result.stdout + result.stderr


def test_monitoring_user_may_read_metrics(lab, admin):
    for command in (["INFO"], ["PING"], ["CONFIG", "GET", "maxmemory"], ["SLOWLOG", "GET"]):
        result = admin("ACL", "DRYRUN", lab["REDIS_MONITOR_USER"], *command)
        assert result.stdout.strip() == "OK", (command, result.stdout)


def test_outsider_cannot_reach_the_redis_port(lab, tcp_probe):
    assert tcp_probe(lab["LAB_OUTSIDER_NETNS"], lab["REDIS_HOST"], int(lab["REDIS_PORT"])) == "timeout"


def test_allowed_client_reaches_the_redis_port(lab, tcp_probe):
    assert tcp_probe(lab["LAB_CLIENT_NETNS"], lab["REDIS_HOST"], int(lab["REDIS_PORT"])) == "open"


def test_monitoring_host_reaches_the_redis_port(lab, on_host):
    address = (lab["REDIS_HOST"], int(lab["REDIS_PORT"]))
    probe = f"import socket; socket.create_connection({address!r}, timeout=3); print('open')"
    assert on_host("monitor-1", f'python3 -c "{probe}"').stdout.strip() == "open"


def test_outsider_reaches_the_host_itself(lab, tcp_probe):
    """The outsider does reach redis-1 (SSH answers): what keeps it from Redis is the firewall, not routing."""
    assert tcp_probe(lab["LAB_OUTSIDER_NETNS"], lab["REDIS_HOST"], 22) == "open"


def test_hosts_have_no_route_off_the_lab(on_redis_host):
    result = on_redis_host("ip route get 192.0.2.1", check=False)
    assert result.returncode != 0 and "unreachable" in result.stderr.lower()


def test_apt_proxy_refuses_anything_but_debian(on_redis_host):
    probe = (
        "import urllib.request, urllib.error\n"
        "try:\n    urllib.request.urlopen('http://example.org/', timeout=10)\n    print('fetched')\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n"
    )
    proxy = "http_proxy=$(grep -o 'http://[^\"]*' /etc/apt/apt.conf.d/01lab-proxy)"
    result = on_redis_host(f"{proxy} python3 -c {shlex.quote(probe)}")
    assert result.stdout.strip() == "403"
