"""Each bad variable stops the role before anything changes on the host, with a message naming the variable."""

import json

import pytest

# What the role writes, and the running server: all must be exactly as they were after a refused run.
HOST_STATE = (
    "sha256sum /etc/redis/redis.conf /etc/redis/users.acl /etc/redis/admin.env "
    "/etc/systemd/system/redis-server.service.d/*.conf /etc/nftables.d/*.nft; "
    "nft list ruleset | sha256sum; systemctl show --property=MainPID --value redis-server"
)

BAD_VALUES = {
    "malformed save entry": ("redis_save", ["900 1", "every minute"]),
    "unknown eviction policy": ("redis_maxmemory_policy", "allkeys-newest"),
    "empty bind list": ("redis_bind_addresses", []),
    "short password": ("redis_app_password", "only-15-chars!!"),
    "allow-list entry that is not a CIDR": ("redis_allowed_cidrs", ["10.213.37.51/32", "10.213.37.300/24"]),
    "allow-list entry without a prefix": ("redis_allowed_cidrs", ["10.213.37.51"]),
    "allow-list open to the world": ("redis_allowed_cidrs", ["0.0.0.0/0"]),
}


@pytest.mark.parametrize("variable, value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_variable_fails_before_any_change(converge, on_redis_host, tmp_path, variable, value):
    before = on_redis_host(HOST_STATE).stdout
    extra_vars = tmp_path / "bad.json"
    extra_vars.write_text(json.dumps({variable: value}))

    result = converge("--limit", "redis", "--extra-vars", f"@{extra_vars}")

    assert result.returncode != 0, result.output[-2000:]
    assert "FAILED!" in result.output
    assert variable in result.output[result.output.index("FAILED!") :], "the failure does not name the variable"
    assert result.recap()["redis-1"]["changed"] == 0
    if "password" in variable:
        assert value not in result.output
    assert on_redis_host(HOST_STATE).stdout == before
