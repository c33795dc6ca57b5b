"""A Redis host, as the redis role leaves it."""

import ipaddress
import json
import shlex

import pytest

GROUP = "redis"
CONFIG = "/etc/redis/redis.conf"
ACL_FILE = "/etc/redis/users.acl"
ADMIN_ENV = "/etc/spot-redis/redis-admin.env"


def config_values(host, as_root, directive: str) -> list[str]:
    """Every value line of a directive in redis.conf (a directive may repeat, like `save`)."""
    with as_root():
        lines = host.file(CONFIG).content_string.splitlines()
    return [line.split(None, 1)[1] if " " in line else "" for line in lines if line.split(None, 1)[:1] == [directive]]


def admin_cli(host, as_root, *args: str) -> str:
    """redis-cli on the host as the admin user, whose credentials stay in the root-only env file."""
    port = config_values(host, as_root, "port")[0]
    command = f'set -a; . {ADMIN_ENV}; redis-cli -h 127.0.0.1 -p {port} --user "$REDIS_ADMIN_USER" ' + shlex.join(args)
    with as_root():
        return host.check_output(f"sh -c {shlex.quote(command)}")


def private_addresses(host) -> set[str]:
    out = host.check_output("ip -o -4 addr show scope global")
    return {line.split()[3].split("/")[0] for line in out.splitlines()}


def test_service_is_enabled_and_running(host):
    service = host.service("redis-server")
    assert service.is_enabled
    assert service.is_running


def test_listens_on_loopback_and_private_address_only(host, as_root):
    port = int(config_values(host, as_root, "port")[0])
    listening = {
        s.split("//")[1].rsplit(":", 1)[0].strip("[]")
        for s in host.socket.get_listening_sockets()
        if s.startswith("tcp://") and s.endswith(f":{port}")
    }
    private = private_addresses(host)
    assert "127.0.0.1" in listening
    assert listening & private, f"not listening on a private address ({private}): {listening}"
    assert listening <= private | {"127.0.0.1", "::1"}, (
        f"listening beyond loopback and the private address: {listening}"
    )
    assert all(ipaddress.ip_address(a).is_private for a in listening)


@pytest.mark.parametrize(
    "path, owner, group, mode",
    [
        ("/etc/redis", "root", "redis", 0o750),
        (CONFIG, "root", "redis", 0o640),
        (ACL_FILE, "root", "redis", 0o640),
        ("/etc/spot-redis", "root", "root", 0o700),
        (ADMIN_ENV, "root", "root", 0o600),
    ],
)
def test_config_and_secret_files_are_root_owned_and_not_world_readable(owner_group_mode, path, owner, group, mode):
    assert owner_group_mode(path) == (owner, group, mode)


def test_redis_cannot_write_its_own_configuration(host):
    read_only = host.check_output("systemctl show --property=ReadOnlyPaths --value redis-server").split()
    assert "/etc/redis" in read_only


def test_acl_file_holds_no_plaintext_password(host, as_root):
    with as_root():
        acl = host.file(ACL_FILE).content_string
    assert ">" not in acl, "a password in clear text (>password) in the ACL file"


def test_protected_mode_is_on(host, as_root):
    assert admin_cli(host, as_root, "CONFIG", "GET", "protected-mode").split() == ["protected-mode", "yes"]


def test_default_user_is_off_or_the_app_users_twin_and_named_users_exist(host, as_root):
    """`default` is off, or (redis_legacy_auth) has exactly the password and rules of a user without @admin."""
    users = {line.split()[1]: line.split()[2:] for line in admin_cli(host, as_root, "ACL", "LIST").splitlines()}
    named = {name for name, rule in users.items() if name != "default" and "on" in rule}
    assert len(named) >= 3, f"expected admin, application and monitoring users, got {sorted(named)}"
    if "off" not in users["default"]:
        twins = [name for name in named if sorted(users[name]) == sorted(users["default"])]
        assert twins and "-@admin" in users["default"], "user default is on, and not the application user's twin"


def test_unauthenticated_client_is_refused(host, as_root):
    port = config_values(host, as_root, "port")[0]
    assert "NOAUTH" in host.run(f"redis-cli -h 127.0.0.1 -p {port} GET anything").stdout


def test_data_directory_is_the_redis_directory_of_the_data_volume(host, as_root):
    """<mount>/redis, owned by Redis, on a volume whose root anyone may cross (Prometheus and Alertmanager keep their
    state beside it) and holds no Redis file of its own (a volume of the first layout was moved in place)."""
    data_dir = config_values(host, as_root, "dir")[0].strip('"')
    mount = data_dir.rsplit("/", 1)[0]
    assert data_dir == f"{mount}/redis"
    assert host.mount_point(mount).exists
    with as_root():
        d = host.file(data_dir)
        assert (d.user, d.group, d.mode) == ("redis", "redis", 0o750)
        root = host.file(mount)
        assert (root.user, root.group, root.mode) == ("root", "root", 0o755)
        at_the_root = set(host.check_output(f"ls -A {mount}").split())
    assert not at_the_root & {"dump.rdb", "appendonlydir", ".spot-redis-clean-stop.json"}, at_the_root


def test_running_persistence_is_the_configured_one(host, as_root):
    """What the server does is what redis.conf says (a CONFIG SET at run time would not survive a restart)."""
    configured_save = " ".join(config_values(host, as_root, "save")).strip('"')
    running_save = admin_cli(host, as_root, "CONFIG", "GET", "save").splitlines()[1:]
    assert " ".join(running_save).strip() == configured_save
    running_aof = admin_cli(host, as_root, "CONFIG", "GET", "appendonly").split()[1]
    assert running_aof == config_values(host, as_root, "appendonly")[0]
    assert configured_save or running_aof == "yes", "neither RDB snapshots nor AOF: nothing survives a restart"


def test_systemd_restarts_redis_whatever_ends_it(host):
    assert host.check_output("systemctl show --property=Restart --value redis-server") == "always"


def test_service_waits_for_the_data_mount(host, as_root):
    data_dir = config_values(host, as_root, "dir")[0].strip('"')
    requires = host.check_output("systemctl show --property=RequiresMountsFor --value redis-server")
    assert data_dir in requires.split()


def test_maxmemory_is_set(host, as_root):
    assert int(admin_cli(host, as_root, "CONFIG", "GET", "maxmemory").split()[1]) > 0


def test_firewall_admits_the_redis_port_from_the_allow_list_only(host, as_root):
    """In the input hook, the Redis port is accepted from an allow-list set, and dropped for everyone else."""
    port = config_values(host, as_root, "port")[0]
    with as_root():
        ruleset = json.loads(host.check_output("nft --json list ruleset"))["nftables"]
    rules = [item["rule"] for item in ruleset if "rule" in item]
    hooked = {(c["chain"]["table"], c["chain"]["name"]) for c in ruleset if c.get("chain", {}).get("hook") == "input"}
    port_rules = [
        (rule["expr"][-1], rule["expr"])
        for rule in rules
        if (rule["table"], rule["chain"]) in hooked and f'"right": {port}' in json.dumps(rule["expr"])
    ]
    verdicts = [next(iter(verdict)) for verdict, _ in port_rules]
    assert "drop" in verdicts, f"no drop rule for port {port}"
    accepts = [expr for verdict, expr in port_rules if "accept" in verdict]
    assert accepts and all('"saddr"' in json.dumps(expr) for expr in accepts), "the port is accepted from anywhere"
    assert verdicts.index("drop") > max(i for i, v in enumerate(verdicts) if v == "accept")
