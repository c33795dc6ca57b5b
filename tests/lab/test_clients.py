"""The clients the team uses, run from the lab's client namespaces as the application user: phpredis from Debian
(cache, FLUSHDB, sessions with locking) and redis-py (a pool, a pipeline, Lua, pub/sub); the app user's limits hold
through them; password-only clients get in only with redis_legacy_auth.

The scripts (tests/lab/clients/) read the password from their environment, never from argv, and every run checks
that the password is not in what they printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from lab import control

CLIENTS = control.REPO / "tests" / "lab" / "clients"
PHP = ["php", "-d", "display_errors=stderr", str(CLIENTS / "phpredis.php")]
REDIS_PY = [sys.executable, str(CLIENTS / "redis_py.py")]
TIMEOUT_S = 60


def client_env(lab: dict, user: str, password: str) -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "REDIS_HOST": lab["REDIS_HOST"],
        "REDIS_PORT": lab["REDIS_PORT"],
        "REDIS_USER": user,
        "REDIS_PASSWORD": password,
    }


def without_password(text: str, password: str) -> str:
    leaked = password in text  # not in the assert: pytest would show both strings
    assert not leaked, "a client printed the password"
    return text


def parsed(stdout: str) -> dict:
    """The client's JSON result: its last line."""
    lines = stdout.strip().splitlines()
    assert lines, "the client printed nothing"
    return json.loads(lines[-1])


class Clients:
    """Runs the client scripts inside a lab namespace with one user's credentials."""

    def __init__(self, lab: dict, netns: str, user: str, password: str):
        self.netns, self.password = netns, password
        self.env = client_env(lab, user, password)

    def _argv(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *command]

    def run(self, command: list[str]) -> tuple[int, dict]:
        result = subprocess.run(
            self._argv(command), env=self.env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        without_password(result.stdout + result.stderr, self.password)
        return result.returncode, parsed(result.stdout)

    def ok(self, command: list[str]) -> dict:
        returncode, output = self.run(command)
        assert returncode == 0, output
        return output

    def start(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            self._argv(command), env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def finish(self, process: subprocess.Popen, stdin: str = "") -> dict:
        stdout, stderr = process.communicate(stdin, timeout=TIMEOUT_S)
        without_password(stdout + stderr, self.password)
        assert process.returncode == 0, stdout + stderr
        return parsed(stdout)


@pytest.fixture(scope="module")
def as_app(lab) -> Clients:
    return Clients(lab, lab["LAB_CLIENT_NETNS"], lab["REDIS_APP_USER"], lab["REDIS_APP_PASSWORD"])


@pytest.fixture(scope="module")
def outsider_as_app(lab) -> Clients:
    return Clients(lab, lab["LAB_OUTSIDER_NETNS"], lab["REDIS_APP_USER"], lab["REDIS_APP_PASSWORD"])


@pytest.fixture(scope="module")
def password_only(lab) -> Clients:
    """An old client: `AUTH <app password>`, no user name."""
    return Clients(lab, lab["LAB_CLIENT_NETNS"], "", lab["REDIS_APP_PASSWORD"])


def session_id() -> str:
    return f"test-clients-{uuid.uuid4().hex}"


def assert_denied_but_connected(denied: list[dict]) -> None:
    """CONFIG GET and FLUSHALL: a NOPERM error in the client, and the same connection answers afterwards."""
    assert [d["command"] for d in denied] == ["CONFIG GET", "FLUSHALL"]
    for outcome in denied:
        assert "no permissions" in outcome["error"], outcome
        assert outcome["same_connection_answers"] is True, outcome


# --- phpredis --------------------------------------------------------------------------------------------------


def test_phpredis_cache_with_a_ttl_and_flushdb(as_app):
    result = as_app.ok([*PHP, "cache"])
    assert (result["set"], result["get"]) == (True, "cached value")
    assert 0 < result["ttl"] <= 120
    assert (result["flushdb"], result["get_after_flushdb"]) == (True, False), "FLUSHDB (cache:clear) is allowed"
    assert result["warnings"] == []


def test_phpredis_denied_commands_are_noperm_errors_on_a_live_connection(as_app):
    denied = as_app.ok([*PHP, "cache"])["denied"]
    assert_denied_but_connected(denied)
    assert all(outcome["error"].startswith("NOPERM") for outcome in denied)


def test_php_sessions_are_stored_in_redis_as_the_app_user(as_app, app):
    sid = session_id()
    assert as_app.ok([*PHP, "session", sid]) == {"read": 0, "wrote": 1, "locking": "1", "warnings": []}
    assert as_app.ok([*PHP, "session", sid])["read"] == 1, "the next request reads what the first one wrote"
    key = f"PHPREDIS_SESSION:{sid}"
    assert app("GET", key).stdout.strip() == "count|i:2;"
    assert 0 < int(app("TTL", key).stdout) <= 600, "sessions expire after session.gc_maxlifetime"


def test_php_session_locking_makes_a_second_request_wait_for_the_first(as_app, app):
    """With locking, a request that starts while another holds the session reads what that one wrote; without it,
    it would read the old value and one of the two writes would be lost."""
    sid = session_id()
    first = as_app.start([*PHP, "session", sid, "hold"])
    try:
        assert json.loads(first.stdout.readline()) == {"holding": True, "read": 0}
        assert app("EXISTS", f"PHPREDIS_SESSION:{sid}_LOCK").stdout.strip() == "1"
        second = as_app.start([*PHP, "session", sid])
    finally:
        first_result = as_app.finish(first, "go\n")
    assert first_result["wrote"] == 1
    assert as_app.finish(second)["read"] == 1
    assert app("GET", f"PHPREDIS_SESSION:{sid}").stdout.strip() == "count|i:2;"
    assert app("EXISTS", f"PHPREDIS_SESSION:{sid}_LOCK").stdout.strip() == "0", "the lock is released"


@pytest.mark.parametrize("command", ["cache", "session"])
def test_phpredis_from_the_outsider_namespace_fails(outsider_as_app, command):
    argv = [*PHP, "cache"] if command == "cache" else [*PHP, "session", session_id()]
    returncode, output = outsider_as_app.run(argv)
    assert returncode == 1
    assert "error" in output and "set" not in output


# --- redis-py --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_py(as_app) -> dict:
    return as_app.ok(REDIS_PY)


def test_redis_py_connection_pool_shares_a_few_connections(redis_py):
    pool = redis_py["pool"]
    assert (pool["round_trips"], pool["all_ok"]) == (40, True)
    assert 1 <= pool["connections_opened"] <= 4


def test_redis_py_transaction_pipeline(redis_py):
    assert redis_py["pipeline"] == [1, 2, 42, True, "42"]


def test_redis_py_lua_script_runs_with_the_app_users_limits(redis_py):
    assert redis_py["lua"]["results"] == [5, 10]
    inside = redis_py["lua"]["administration_inside_lua"]
    assert inside["result"] is None and "can't run this command" in inside["error"], inside


def test_redis_py_pubsub_on_the_app_users_channels(redis_py):
    assert redis_py["pubsub"] == {"subscribed": True, "receivers": 1, "received": "hello"}


def test_redis_py_denied_commands_are_noperm_errors_on_a_live_connection(redis_py):
    assert_denied_but_connected(redis_py["denied"])
    assert {outcome["error_type"] for outcome in redis_py["denied"]} == {"NoPermissionError"}


def test_redis_py_from_the_outsider_namespace_fails(outsider_as_app):
    returncode, output = outsider_as_app.run(REDIS_PY)
    assert returncode == 1
    assert output["error"].startswith(("TimeoutError", "ConnectionError")), output


# --- password-only clients (redis_legacy_auth) ------------------------------------------------------------------


def test_password_only_client_is_refused_by_default(password_only, admin):
    returncode, output = password_only.run([*PHP, "cache"])
    assert returncode == 1
    assert "WRONGPASS" in output["error"]
    assert "off" in admin("ACL", "GETUSER", "default").stdout.split()


def acl_rules(admin, user: str) -> list[list[str]]:
    """ACL GETUSER's answer (flags, password hashes, commands, keys, channels, selectors), each line's words sorted:
    Redis may list the same command rules in another order for another user."""
    return [sorted(line.split()) for line in admin("ACL", "GETUSER", user).stdout.splitlines()]


def test_password_only_client_gets_exactly_the_app_users_rights_with_legacy_auth(
    converge_with, password_only, as_app, lab, admin, client
):
    app_rules = acl_rules(admin, lab["REDIS_APP_USER"])
    others = {user: acl_rules(admin, user) for user in (lab["REDIS_ADMIN_USER"], lab["REDIS_MONITOR_USER"])}
    with converge_with("redis", {"redis_legacy_auth": True}):
        assert acl_rules(admin, "default") == app_rules
        assert acl_rules(admin, lab["REDIS_APP_USER"]) == app_rules
        result = password_only.ok([*PHP, "cache"])
        assert (result["get"], result["flushdb"]) == ("cached value", True)
        assert_denied_but_connected(result["denied"])
        assert password_only.ok([*PHP, "session", session_id()])["wrote"] == 1
        assert as_app.ok([*PHP, "cache"])["get"] == "cached value", "AUTH <user> <password> still works"
        assert "NOAUTH" in client("PING").stdout, "a connection without AUTH is still refused"
        assert {user: acl_rules(admin, user) for user in others} == others, "admin and monitor unchanged"
    assert "off" in admin("ACL", "GETUSER", "default").stdout.split()
    assert password_only.run([*PHP, "cache"])[0] == 1, "off again once the setting is back to false"
