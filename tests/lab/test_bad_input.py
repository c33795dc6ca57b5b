"""Each bad variable stops its role before anything changes on the host, with a message naming the variable."""

import json

import pytest

# What the roles write, and the running servers: all must be exactly as they were after a refused run.
HOST_STATE = {
    "redis-1": (
        "sha256sum /etc/redis/redis.conf /etc/redis/users.acl /etc/spot-redis/* "
        "/etc/systemd/system/redis-server.service.d/*.conf /etc/nftables.d/*.nft; "
        "nft list ruleset | sha256sum; systemctl show --property=MainPID --value redis-server"
    ),
    "monitor-1": (
        "sha256sum /etc/prometheus/*.yml /etc/prometheus/rules/* /etc/prometheus/alertmanager-* "
        "/etc/default/prometheus* /etc/nftables.d/*.nft; nft list ruleset | sha256sum; "
        "systemctl show --property=MainPID --value prometheus prometheus-alertmanager"
    ),
}

BROKEN_RULES = "groups:\n  - name: broken\n    rules: [ {alert: Oops, expr: up == 0\n"

BAD_VALUES = {
    "malformed save entry": ("redis-1", "redis_save", ["900 1", "every minute"]),
    "unknown eviction policy": ("redis-1", "redis_maxmemory_policy", "allkeys-newest"),
    "empty bind list": ("redis-1", "redis_bind_addresses", []),
    "wildcard bind": ("redis-1", "redis_bind_addresses", ["127.0.0.1", "0:0::0"]),
    "short password": ("redis-1", "redis_app_password", "only-15-chars!!"),
    "legacy auth neither on nor off": ("redis-1", "redis_legacy_auth", "sometimes"),
    "allow-list entry that is not a CIDR": ("redis-1", "redis_allowed_cidrs", ["10.213.37.51/32", "10.213.37.300/24"]),
    "allow-list entry without a prefix": ("redis-1", "redis_allowed_cidrs", ["10.213.37.51"]),
    "allow-list open to the world": ("redis-1", "redis_allowed_cidrs", ["0.0.0.0/0"]),
    "Slack URL that is not https": ("monitor-1", "alertmanager_slack_webhook_url", "http://hooks.example/T0/B0/xyz"),
    "unknown severity in a route": (
        "monitor-1",
        "alertmanager_routes",
        [{"severity": "page", "channel": "#staging-redis", "repeat_interval": "1h"}],
    ),
    "rule file that does not parse": ("monitor-1", "prometheus_rule_files", BROKEN_RULES),
}


def state_of_every_host(on_host) -> dict[str, str]:
    return {host: on_host(host, command).stdout for host, command in HOST_STATE.items()}


@pytest.mark.parametrize("host, variable, value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_variable_fails_before_any_change(converge, on_host, tmp_path, host, variable, value):
    """The whole run stops before any role changes any host, not only the host the variable is for."""
    if variable == "prometheus_rule_files":
        broken = tmp_path / "broken.rules.yml"
        broken.write_text(value)
        value = [str(broken)]
    before = state_of_every_host(on_host)
    extra_vars = tmp_path / "bad.json"
    extra_vars.write_text(json.dumps({variable: value}))

    result = converge("--extra-vars", f"@{extra_vars}")

    assert result.returncode != 0, result.output[-2000:]
    failure = result.output[result.output.index("FAILED!") :]
    assert f"fatal: [{host}]" in result.output, "the run failed, but not on the host the variable is for"
    assert variable in failure, "the failure does not name the variable"
    assert {name: counts["changed"] for name, counts in result.recap().items()} == dict.fromkeys(HOST_STATE, 0)
    if "password" in variable or "url" in variable:
        assert value not in result.output
    assert state_of_every_host(on_host) == before
