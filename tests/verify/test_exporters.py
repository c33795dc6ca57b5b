"""A Redis host's exporters, as the node_exporter and redis_exporter roles leave them."""

import re

import pytest

GROUP = "redis"
NODE_DEFAULT = "/etc/default/prometheus-node-exporter"
REDIS_DEFAULT = "/etc/default/prometheus-redis-exporter"
REDIS_ENV = "/etc/spot-redis/redis-exporter.env"


def env_value(host, as_root, name: str) -> str:
    """A value from the credentials file, unquoted as systemd reads it."""
    with as_root():
        content = host.file(REDIS_ENV).content_string
    match = re.search(rf'^{name}="((?:[^"\\]|\\.)*)"$', content, re.MULTILINE)
    assert match, f"no quoted {name} in {REDIS_ENV}"
    return re.sub(r"\\(.)", r"\1", match[1])


@pytest.mark.parametrize(
    "path, owner, group, mode",
    [
        (NODE_DEFAULT, "root", "root", 0o644),
        (REDIS_DEFAULT, "root", "root", 0o644),
        ("/etc/spot-redis", "root", "root", 0o700),
        (REDIS_ENV, "root", "root", 0o600),
    ],
)
def test_files_have_their_owner_and_mode(owner_group_mode, path, owner, group, mode):
    assert owner_group_mode(path) == (owner, group, mode)


def test_redis_exporter_reads_its_credentials_from_the_root_only_file(host):
    files = host.check_output("systemctl show --property=EnvironmentFiles --value prometheus-redis-exporter")
    assert REDIS_ENV in files


def test_redis_password_is_neither_on_the_command_line_nor_in_a_readable_file(host, as_root):
    password = env_value(host, as_root, "REDIS_PASSWORD")
    assert len(password) >= 16
    pid = host.check_output("systemctl show --property=MainPID --value prometheus-redis-exporter")
    assert pid != "0"
    with as_root():
        cmdline = host.file(f"/proc/{pid}/cmdline").content_string
        flags = host.file(REDIS_DEFAULT).content_string
    assert cmdline, "the exporter's command line could not be read"
    environment = host.check_output("systemctl show --property=Environment --value prometheus-redis-exporter")
    # Reduced to booleans, so that a failure names the place and never shows the password.
    found = {
        "command line": password in cmdline,
        REDIS_DEFAULT: password in flags,
        "unit Environment=": password in environment,
    }
    assert not [where for where, present in found.items() if present], f"the Redis password is in: {found}"


def test_redis_exporter_logs_in_as_a_least_privilege_user(host, as_root, listen_address, http_get):
    """Its ACL user is on, starts from no commands and no keys, and may run no command that changes anything."""
    user = env_value(host, as_root, "REDIS_USER")
    with as_root():
        acl = host.file("/etc/redis/users.acl").content_string.splitlines()
    rules = next(line.split()[2:] for line in acl if line.split()[:2] == ["user", user])
    assert "on" in rules and "-@all" in rules, rules
    granted = [rule for rule in rules if rule.startswith(("+", "~", "%", "allkeys", "allcommands"))]
    assert not [rule for rule in granted if rule.startswith(("~", "%", "allkeys", "allcommands", "+@"))], granted
    address, port = listen_address(REDIS_DEFAULT)
    status, body = http_get(
        f"http://{address}:{port}/metrics" if ":" not in address else f"http://[{address}]:{port}/metrics"
    )
    assert status == 200
    assert re.search(r"^redis_up 1$", body, re.MULTILINE), "redis_exporter cannot reach or log in to Redis"


def test_node_exporter_answers(listen_address, http_get):
    address, port = listen_address(NODE_DEFAULT)
    status, body = http_get(
        f"http://{address}:{port}/metrics" if ":" not in address else f"http://[{address}]:{port}/metrics"
    )
    assert status == 200
    assert "node_filesystem_avail_bytes" in body
