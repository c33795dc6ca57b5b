"""Lab integration tests: they run against the lab that `make lab` booted and converged (see .lab/env)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from dataclasses import dataclass

import pytest

from lab import control, topology

REPO = control.REPO
RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
)


DRILL_TESTS = "test_drill.py"


def pytest_collection_modifyitems(items):
    """The drills run last: each replaces the Redis host that the other tests know as redis-1."""
    items.sort(key=lambda item: item.path.name == DRILL_TESTS)


class LabEnv(dict):
    """.lab/env, which pytest shows among a failing test's arguments: its passwords are never shown."""

    def __repr__(self) -> str:
        return repr({key: "<hidden>" if "PASSWORD" in key else value for key, value in self.items()})


@pytest.fixture(scope="session")
def lab() -> dict[str, str]:
    if not (control.STATE / "env").exists():
        pytest.fail(f"{control.STATE / 'env'} is missing: run `make lab` first")
    return LabEnv(control.read_env())


@dataclass
class RedisClient:
    """redis-cli run inside one of the lab's client namespaces, as one ACL user (or none)."""

    netns: str
    host: str
    port: str

    def __call__(
        self, *args: str, user: str | None = None, password: str | None = None, timeout: float = 10
    ) -> subprocess.CompletedProcess:
        cmd = ["ip", "netns", "exec", self.netns, "redis-cli", "-h", self.host, "-p", self.port]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if user:
            cmd += ["--user", user]
            env["REDISCLI_AUTH"] = password or ""
        return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def client(lab) -> RedisClient:
    return RedisClient(lab["LAB_CLIENT_NETNS"], lab["REDIS_HOST"], lab["REDIS_PORT"])


@pytest.fixture(scope="session")
def outsider(lab) -> RedisClient:
    return RedisClient(lab["LAB_OUTSIDER_NETNS"], lab["REDIS_HOST"], lab["REDIS_PORT"])


@pytest.fixture(scope="session")
def app(lab, client):
    """redis-cli from the allowed client, as the application user."""
    return lambda *args: client(*args, user=lab["REDIS_APP_USER"], password=lab["REDIS_APP_PASSWORD"])


@pytest.fixture(scope="session")
def admin(lab, client):
    """redis-cli from the allowed client, as the admin user."""
    return lambda *args: client(*args, user=lab["REDIS_ADMIN_USER"], password=lab["REDIS_ADMIN_PASSWORD"])


@pytest.fixture(scope="session")
def on_host():
    """Run a shell command on a lab host over SSH, as root."""

    def run(name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        result = control.ssh(topology.node(name), command, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{command!r} failed on {name}: {result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def on_redis_host(on_host):
    return lambda command, check=True: on_host("redis-1", command, check)


@dataclass
class Converge:
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        found = {}
        for line in self.output.splitlines():
            if match := RECAP.match(line):
                found[match["host"]] = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
        return found


@pytest.fixture(scope="session")
def converge(lab):
    """Run the site playbook against the lab (or another of its inventories), with optional extra arguments."""

    def run(*extra: str, inventory: str = lab["LAB_INVENTORY"]) -> Converge:
        cmd = ["ansible-playbook", "-i", inventory, "ansible/site.yml", *extra]
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
        return Converge(result.returncode, result.stdout + result.stderr)

    return run


@pytest.fixture(scope="session")
def tcp_probe():
    return probe_tcp


def probe_tcp(netns: str, address: str, port: int) -> str:
    """Try a TCP connection from inside a namespace: 'open', 'refused' or 'timeout'."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=3).close(); print('open')\n"
        "except ConnectionRefusedError:\n    print('refused')\n"
        "except TimeoutError:\n    print('timeout')\n"
    )
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", probe], capture_output=True, text=True, timeout=20, check=False
    )
    return result.stdout.strip() or result.stderr.strip()


@pytest.fixture
def converge_with(converge, tmp_path):
    """Converge part of the lab with some settings changed; whatever happens, converge it back afterwards."""

    @contextlib.contextmanager
    def changed(limit: str, settings: dict):
        extra_vars = tmp_path / "settings.json"
        extra_vars.write_text(json.dumps(settings))
        try:
            result = converge("--limit", limit, "--extra-vars", f"@{extra_vars}")
            assert result.returncode == 0, result.output[-3000:]
            yield result
        finally:
            restored = converge("--limit", limit)
        assert restored.returncode == 0, restored.output[-3000:]

    return changed
