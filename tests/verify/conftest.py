"""tests/verify: the testinfra suite for any inventory (the lab's, or the AWS hosts').

    pytest tests/verify --hosts=ansible://all --ansible-inventory=inventories/lab

Tests read what they check from the host itself (its config files, interfaces, sockets), never from
the lab's files, so that they mean the same on the real hosts. Each test module names the inventory
group it is about; on hosts outside that group its tests are skipped.
"""

import contextlib
import json
import re
import shlex

import pytest


@pytest.fixture(scope="module")
def groups(host) -> set[str]:
    return set(host.ansible.get_variables().get("group_names", []))


@pytest.fixture(autouse=True)
def only_for_its_group(request, groups):
    group = getattr(request.module, "GROUP", None)
    if group and group not in groups:
        pytest.skip(f"not in group {group}")


@pytest.fixture(scope="module")
def as_root(host):
    """A context in which commands run as root: sudo where the connection user is not root (the lab has no sudo)."""
    is_root = host.check_output("id -u") == "0"
    return contextlib.nullcontext if is_root else host.sudo


# --- helpers for the monitoring services (node and Redis exporters, Prometheus, Alertmanager) ------------------


@pytest.fixture(scope="module")
def listen_address(host, as_root):
    """The (address, port) a Debian prometheus-* service listens on, from --web.listen-address in /etc/default."""

    def read(default_file: str) -> tuple[str, int]:
        with as_root():
            content = host.file(default_file).content_string
        match = re.search(r"--web\.listen-address=(\S+?)[\"\s]", content)
        assert match, f"no --web.listen-address in {default_file}"
        address, port = match[1].rsplit(":", 1)
        return address.strip("[]"), int(port)

    return read


@pytest.fixture(scope="module")
def http_get(host):
    """GET a URL from the host itself (curl is not installed there): (status, body)."""

    def get(url: str) -> tuple[int, str]:
        script = (
            "import sys, urllib.error, urllib.request\n"
            "try:\n"
            "    with urllib.request.urlopen(sys.argv[1], timeout=10) as r: code, body = r.status, r.read()\n"
            "except urllib.error.HTTPError as e:\n"
            "    code, body = e.code, e.read()\n"
            "sys.stdout.write(str(code) + '\\n' + body.decode())\n"
        )
        out = host.check_output(f"python3 -c {shlex.quote(script)} {shlex.quote(url)}")
        status, _, body = out.partition("\n")
        return int(status), body

    return get


@pytest.fixture(scope="module")
def private_addresses(host) -> set[str]:
    out = host.check_output("ip -o addr show scope global")
    return {line.split()[3].split("/")[0] for line in out.splitlines()}


@pytest.fixture(scope="module")
def listening_on(host):
    """The addresses that listen on a port, for a protocol (tcp or udp)."""

    def addresses(port: int, protocol: str = "tcp") -> set[str]:
        return {
            s.split("//")[1].rsplit(":", 1)[0].strip("[]")
            for s in host.socket.get_listening_sockets()
            if s.startswith(f"{protocol}://") and s.endswith(f":{port}")
        }

    return addresses


@pytest.fixture(scope="module")
def assert_port_allow_listed(host, as_root):
    """In the input hook, a TCP port is accepted from an allow-list set only, and dropped for everyone else."""

    def check(port: int) -> None:
        with as_root():
            ruleset = json.loads(host.check_output("nft --json list ruleset"))["nftables"]
        hooked = {
            (c["chain"]["table"], c["chain"]["name"]) for c in ruleset if c.get("chain", {}).get("hook") == "input"
        }
        port_rules = [
            (rule["expr"][-1], rule["expr"])
            for rule in (item["rule"] for item in ruleset if "rule" in item)
            if (rule["table"], rule["chain"]) in hooked and f'"right": {port}' in json.dumps(rule["expr"])
        ]
        verdicts = [next(iter(verdict)) for verdict, _ in port_rules]
        assert "drop" in verdicts, f"no drop rule for port {port}"
        accepts = [expr for verdict, expr in port_rules if "accept" in verdict]
        assert accepts, f"port {port} is accepted from nowhere"
        assert all('"saddr"' in json.dumps(expr) for expr in accepts), f"port {port} is accepted from anywhere"
        assert verdicts.index("drop") > max(i for i, v in enumerate(verdicts) if v == "accept")

    return check


@pytest.fixture
def owner_group_mode(host, as_root):
    """(owner, group, mode) of a path that must exist, read as root."""

    def read(path: str) -> tuple[str, str, int]:
        with as_root():
            f = host.file(path)
            assert f.exists, f"{path} is missing"
            return f.user, f.group, f.mode

    return read
