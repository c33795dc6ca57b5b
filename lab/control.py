"""The local lab: real Debian 12 hosts under systemd-nspawn, each in its own network namespace.

    python -m lab up      build (once) the base image, boot the hosts, write .lab/env; reuses what runs
    python -m lab down    remove every host, namespace, veth, mount and loop device of any lab, even a killed one
    python -m lab status  what is running
    python -m lab info    how to connect
    python -m lab notice HOST [--in SECONDS]   give an agent-booted host a Spot interruption notice
    python -m lab rebalance HOST               give it a rebalance recommendation
    python -m lab replace HOST                 stop a pushed host with a data disk, give it a new root disk (its
                                               keys, machine id and packages all new), boot it with the same data disk
    python -m lab drill [--variant V]          an interruption drill: notice, hard-kill or lost-disk (lab/drill.py)

Must run as root, from the repository's root. Why each step is the way it is: the comments beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lab import cloud, topology
from lab.topology import HOSTS, NODES, Node

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".lab"
CACHE = Path(os.environ.get("LAB_CACHE_DIR", "/var/cache/spot-redis-lab"))
NSPAWN_RUN = Path("/run/systemd/nspawn")
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "procps")
# Bump when the image's customisation below changes, so that the cached image is rebuilt.
IMAGE_RECIPE = 1
PROXY_SCRIPT = "lab/apt_proxy.py"
SINK_SCRIPT = "lab/webhook_sink.py"
AWS_API_SCRIPT = "lab/aws_api.py"
IMDS_SCRIPT = "lab/imds.py"
WHEELS_SCRIPT = "lab/wheelhouse.py"
SEAM_SCRIPT = "lab/volume_seam.py"
EVENT_BUS_SCRIPT = "lab/event_bus.py"
AGENT_BOOT_TIMEOUT_S = 900
DATA_DISK_PREFIX = "srlab-data-"  # names the lab's disk images and their mount points, whatever the checkout's path
PASSWORDS = ("redis_admin_password", "redis_app_password", "redis_monitor_password")
WEBHOOKS = {"slack_webhook_url": "slack", "heartbeat_url": "heartbeat"}  # secret name -> sink folder
BOOT_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


def log(message: str) -> None:
    print(f"lab: {message}", flush=True)


def run(*cmd: str | Path, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=check, text=True, capture_output=capture)


def write_private(path: Path, text: str) -> None:
    """Write a file only root can read, creating it with that mode (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# --- the base image -------------------------------------------------------------------------------------------


def image_dir() -> Path:
    recipe = f"{SUITE} {MIRROR} {' '.join(BASE_PACKAGES)} {IMAGE_RECIPE}"
    return CACHE / f"base-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_image() -> Path:
    rootfs = image_dir() / "rootfs"
    if rootfs.is_dir():
        log(f"base image: cached at {rootfs}")
        return rootfs
    building = image_dir().with_suffix(".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    log(f"base image: debootstrap {SUITE} (about a minute, once)")
    started = time.monotonic()
    with (building / "debootstrap.log").open("w") as debootstrap_log:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(building / "rootfs"),
                MIRROR,
            ],
            check=True,
            stdout=debootstrap_log,
            stderr=subprocess.STDOUT,
        )
    customise_image(building / "rootfs")
    building.rename(image_dir())
    log(f"base image: built in {time.monotonic() - started:.0f} s")
    return rootfs


def customise_image(rootfs: Path) -> None:
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\ndeb {MIRROR} {SUITE}-updates main\ndeb {MIRROR}-security {SUITE}-security main\n"
    )
    # The hosts have no route off the lab: apt goes through the lab's proxy, which reaches only Debian.
    (rootfs / "etc/apt/apt.conf.d/01lab-proxy").write_text(
        f'Acquire::http::Proxy "http://{topology.GATEWAY}:{topology.APT_PROXY_PORT}";\n'
    )
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each host gets its own keys
    (rootfs / "etc/machine-id").write_text("")
    run("apt-get", "clean", "-o", f"Dir={rootfs}", check=False)


# --- hosts ----------------------------------------------------------------------------------------------------


def host_dir(node: Node) -> Path:
    return STATE / "hosts" / node.name


def ssh_key() -> Path:
    key = STATE / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "spot-redis-lab", "-f", key)
    return key


def ensure_rootfs(node: Node, image: Path) -> Path:
    rootfs = host_dir(node) / "rootfs"
    if rootfs.is_dir():
        return rootfs
    partial = rootfs.with_name("rootfs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    run("cp", "-a", "--reflink=auto", image, partial)
    (partial / "etc/hostname").write_text(f"{node.name}\n")
    (partial / "etc/hosts").write_text(f"127.0.0.1 localhost\n{node.address} {node.name}\n")
    (partial / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    run("ssh-keygen", "-q", "-A", "-f", partial)
    authorized = partial / "root/.ssh/authorized_keys"
    authorized.parent.mkdir(mode=0o700, exist_ok=True)
    authorized.write_text(Path(f"{ssh_key()}.pub").read_text())
    authorized.chmod(0o600)
    if node.agent:
        prepare_agent_rootfs(partial)
    partial.rename(rootfs)
    return rootfs


def ensure_data_disk(node: Node) -> Path:
    """A disk image with its own ext4 file system, mounted on the machine and bound into the host."""
    image = STATE / "disks" / f"{DATA_DISK_PREFIX}{node.name}.img"
    mountpoint = STATE / "mnt" / f"{DATA_DISK_PREFIX}{node.name}"
    if not image.exists():
        image.parent.mkdir(parents=True, exist_ok=True)
        with image.open("wb") as handle:
            handle.truncate(node.data_size_mib * 1024 * 1024)
        if not node.agent:  # an agent-booted host makes the file system itself, as on a new EBS volume
            run("mkfs.ext4", "-q", "-F", "-L", f"{node.name}-data", image)
    if node.agent:
        return image
    mountpoint.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(mountpoint):
        run("mount", "-o", "loop", image, mountpoint)
    return mountpoint


def known_hosts_lines(node: Node) -> list[str]:
    keys = sorted((host_dir(node) / "rootfs/etc/ssh").glob("ssh_host_*_key.pub"))
    return [f"{node.address} {' '.join(key.read_text().split()[:2])}" for key in keys]


def processes() -> dict[int, list[str]]:
    """argv of every process, by pid."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except OSError:
                continue
            found[int(proc.name)] = [a.decode(errors="replace") for a in argv]
    return found


def option(argv: list[str], name: str) -> str | None:
    return next((a.removeprefix(f"{name}=") for a in argv if a.startswith(f"{name}=")), None)


def nspawn_hosts() -> dict[str, tuple[int, str]]:
    """Every running host of a lab (this checkout's or another's): machine name -> (pid, root directory)."""
    found = {}
    for pid, argv in processes().items():
        netns = option(argv, "--network-namespace-path") or ""
        if argv[0].endswith("systemd-nspawn") and netns.startswith(f"/run/netns/{topology.NETNS_PREFIX}"):
            found[option(argv, "--machine") or "?"] = (pid, option(argv, "--directory") or "?")
    return found


def boot(node: Node, rootfs: Path) -> None:
    cmd = [
        "systemd-nspawn",
        f"--directory={rootfs}",
        f"--machine={node.name}",
        "--boot",
        "--register=no",
        "--keep-unit",  # there is no systemd on the machine to make a scope for it
        f"--network-namespace-path=/run/netns/{node.netns}",
        "--console=read-only",
        # Its own network namespace, so the host's nftables firewall can be real; nspawn drops this otherwise.
        "--capability=CAP_NET_ADMIN",
    ]
    if node.data_mount and not node.agent:
        cmd.append(f"--bind={ensure_data_disk(node)}:{node.data_mount}")
    console = (host_dir(node) / "console.log").open("ab")
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_ssh(node: Node, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((node.address, 22), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"lab: {node.name} did not answer SSH within {BOOT_TIMEOUT_S} s; see {host_dir(node)}/console.log")


def ssh_command(node: Node) -> list[str]:
    """ssh as root to a lab host, with the lab's key, checking the host's own key."""
    options = {"UserKnownHostsFile": STATE / "ssh/known_hosts", "StrictHostKeyChecking": "yes",
               "IdentitiesOnly": "yes", "BatchMode": "yes", "ConnectTimeout": "10"}  # fmt: skip
    return [
        "ssh",
        "-i",
        str(ssh_key()),
        *(f"-o{key}={value}" for key, value in options.items()),
        f"root@{node.address}",
    ]


def ssh(node: Node, *command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*ssh_command(node), *command], check=check, text=True, capture_output=True, timeout=timeout)


# --- network --------------------------------------------------------------------------------------------------


def check_subnet_is_ours() -> None:
    """Refuse to start when anything but the lab's bridge already routes the lab's subnet."""
    routes = run("ip", "-o", "route", "show", "table", "all", capture=True).stdout.splitlines()
    for route in routes:
        fields = route.split()
        if not fields or fields[0] in ("default", "local", "broadcast", "multicast") or "/" not in fields[0]:
            continue
        net = ipaddress.ip_network(fields[0], strict=False)
        if net.version == 4 and net.overlaps(topology.SUBNET) and f"dev {topology.BRIDGE}" not in route:
            raise SystemExit(f"lab: {topology.SUBNET} is already in use on this machine ({route}); not starting")


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", name, check=False, capture=True).returncode == 0


def ensure_bridge() -> None:
    if not link_exists(topology.BRIDGE):
        run("ip", "link", "add", topology.BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{topology.GATEWAY}/{topology.SUBNET.prefixlen}", "dev", topology.BRIDGE)
    # Nothing that arrives on the bridge is forwarded off it, even if a host adds a route or ip_forward is on.
    Path(f"/proc/sys/net/ipv4/conf/{topology.BRIDGE}/forwarding").write_text("0\n")
    Path(f"/proc/sys/net/ipv6/conf/{topology.BRIDGE}/disable_ipv6").write_text("1\n")
    run("ip", "link", "set", topology.BRIDGE, "up")


def ensure_netns(node: Node) -> None:
    if not Path(f"/run/netns/{node.netns}").exists():
        run("ip", "netns", "add", node.netns)
    if not link_exists(node.veth):
        run("ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        run("ip", "-n", node.netns, "addr", "add", f"{node.address}/{topology.SUBNET.prefixlen}", "dev", "eth0")
    run("ip", "link", "set", node.veth, "master", topology.BRIDGE, "up")
    run("ip", "-n", node.netns, "link", "set", "lo", "up")
    run("ip", "-n", node.netns, "link", "set", "eth0", "up")
    # No default route on purpose: nothing in the lab can reach an address off the lab bridge.


def daemon_pids(script: str, port: int) -> list[int]:
    """A lab daemon, of this checkout or another: a python running .../<script> --listen=<gateway>:<port>."""
    listen = f"{topology.GATEWAY}:{port}"
    return [
        pid for pid, argv in processes().items()
        if len(argv) > 1 and argv[1].endswith(script) and option(argv, "--listen") == listen
    ]  # fmt: skip


def lab_daemon_pids() -> list[int]:
    daemons = ((PROXY_SCRIPT, topology.APT_PROXY_PORT), (SINK_SCRIPT, topology.SINK_PORT),
               (AWS_API_SCRIPT, topology.AWS_API_PORT), (IMDS_SCRIPT, topology.IMDS_PORT),
               (WHEELS_SCRIPT, topology.WHEELS_PORT), (SEAM_SCRIPT, topology.AWS_API_PORT),
               (EVENT_BUS_SCRIPT, topology.AWS_API_PORT))  # fmt: skip
    return [pid for script, port in daemons for pid in daemon_pids(script, port)]


def ensure_daemon(script: str, port: int, *args: str) -> None:
    """Start one of the lab's own daemons on the bridge address, unless it runs already; it outlives this command."""
    if daemon_pids(script, port):
        return
    cmd = [sys.executable, str(REPO / script), f"--listen={topology.GATEWAY}:{port}", *args]
    daemon_log = (STATE / f"{Path(script).stem}.log").open("ab")
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=daemon_log, stderr=subprocess.STDOUT, start_new_session=True)


def ensure_apt_proxy() -> None:
    allowed = [f"--allow={host}" for host in topology.APT_UPSTREAM_HOSTS]
    ensure_daemon(PROXY_SCRIPT, topology.APT_PROXY_PORT, f"--cache-dir={CACHE / 'debs'}", *allowed)


def ensure_tls() -> Path:
    """A lab CA (.lab/tls/ca.pem, which the hosts are told to trust) and the sink's certificate for the bridge."""
    tls = STATE / "tls"
    server_pem = tls / "server.pem"
    valid_for_a_day = ["openssl", "x509", "-checkend", "86400", "-noout", "-in", server_pem]
    if server_pem.exists() and run(*valid_for_a_day, check=False, capture=True).returncode == 0:
        return server_pem
    tls.mkdir(mode=0o700, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"]
    run("openssl", "req", "-x509", *ec, "-days", "30", "-subj", "/CN=spot-redis lab CA", "-keyout", tls / "ca.key",
        "-out", tls / "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign", capture=True)  # fmt: skip
    run("openssl", "req", *ec, "-subj", f"/CN={topology.GATEWAY}", "-keyout", tls / "server.key",
        "-out", tls / "server.csr", capture=True)  # fmt: skip
    (tls / "server.ext").write_text(f"subjectAltName=IP:{topology.GATEWAY}\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", tls / "server.csr", "-CA", tls / "ca.pem", "-CAkey", tls / "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", tls / "server.ext", "-out", tls / "server.crt",
        capture=True)  # fmt: skip
    write_private(server_pem, (tls / "server.crt").read_text() + (tls / "server.key").read_text())
    return server_pem


def ensure_webhook_sink() -> None:
    """The Slack and dead-man's-switch stand-ins, each keeping what it receives under .lab/<kind>/."""
    routes = [f"--route={STATE / kind}={STATE / 'secrets' / name}" for name, kind in WEBHOOKS.items()]
    ensure_daemon(SINK_SCRIPT, topology.SINK_PORT, f"--cert={ensure_tls()}", *routes)


def ensure_nspawn_tmpfs() -> None:
    # nspawn refuses to run while /run/systemd/nspawn is on the root disk (lab-hosts.md, step 3).
    NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(NSPAWN_RUN):
        run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", NSPAWN_RUN)


# --- the lab's AWS account and the hosts that boot through the agent (lab/cloud.py) ----------------------------


def prepare_agent_rootfs(rootfs: Path) -> None:
    """What an agent-booted host finds on AWS without asking: pip's index (here the lab's wheelhouse) and the
    instance profile's credentials (here the local AWS API's fake ones)."""
    wheels_host = topology.GATEWAY
    (rootfs / "etc/pip.conf").write_text(
        f"[global]\nno-index = true\nfind-links = {cloud.WHEELS_URL}\ntrusted-host = {wheels_host}\n"
    )
    credentials = rootfs / "root/.aws/credentials"
    credentials.parent.mkdir(mode=0o700, exist_ok=True)
    credentials.write_text(cloud.FAKE_CREDENTIALS)
    credentials.chmod(0o600)


def ensure_cloud(passwords: dict[str, str]) -> cloud.Account | None:
    """The local AWS API, the metadata service, the wheelhouse, the volume seam and the event bus (the Lambdas);
    the stack's resources in it."""
    first_host = next((node for node in HOSTS if node.agent), None)  # the group's first instance
    if first_host is None:
        return None
    from infra.bootstrap import ansible_core_pin, bundle_archive, bundle_files
    from lab import aws_api, imds, wheelhouse

    ensure_daemon(AWS_API_SCRIPT, topology.AWS_API_PORT)
    ensure_daemon(IMDS_SCRIPT, topology.IMDS_PORT, f"--state-dir={STATE / 'imds'}")
    pin = ansible_core_pin((REPO / "requirements.txt").read_text())
    wheels = wheelhouse.ensure_wheelhouse(CACHE, [f"ansible-core=={pin}"])
    ensure_daemon(WHEELS_SCRIPT, topology.WHEELS_PORT, f"--dir={wheels}")
    aws_api.wait_until_up(cloud.AWS_API_URL, 30)
    aws = cloud.clients()
    account = cloud.Account.load(STATE / "aws.json")
    reseeded = not cloud.is_seeded(aws, account)
    if reseeded:
        stop(daemon_pids(EVENT_BUS_SCRIPT, topology.AWS_API_PORT))  # it holds the ids of the API's last life
        node = first_host  # one Auto Scaling group, one host: the stack's shape
        secrets = {"redis/admin-password": passwords["redis_admin_password"],
                   "redis/app-password": passwords["redis_app_password"],
                   "redis/monitor-password": passwords["redis_monitor_password"],
                   "slack-webhook-url": passwords["slack_webhook_url"],
                   "heartbeat-url": passwords["heartbeat_url"]}  # fmt: skip
        bundle = bundle_archive(bundle_files(REPO))
        account = cloud.seed(
            aws, node=node, disk_image=ensure_data_disk(node), bundle=bundle, secrets=secrets, ansible_core=pin
        )
        account.save(STATE / "aws.json")
        log(f"local AWS API: stack {cloud.STACK} seeded at {cloud.AWS_API_URL}")
    node = topology.node(account.current_host)
    if reseeded or imds.read_host(STATE / "imds", node.address) is None:
        imds.write_host(STATE / "imds", node.address, **cloud.host_metadata(node, account.instance_of(node.name)))
    ensure_daemon(SEAM_SCRIPT, topology.AWS_API_PORT, f"--state={STATE}")
    ensure_daemon(EVENT_BUS_SCRIPT, topology.AWS_API_PORT, f"--state={STATE}")
    return account


def hosts_to_run(account: cloud.Account | None) -> list[Node]:
    """The hosts `up` boots: every booting host that is not an agent host, and the group's instance now."""
    current = account.current_host if account else None
    return [node for node in NODES if (node.boots and not node.agent) or node.name == current]


def boot_through_agent(node: Node, account: cloud.Account) -> None:
    """Run the stack's user data on the host, as cloud-init would (once: a host that booted is left alone)."""
    if ssh(node, "test", "-f", "/var/lib/spot-redis/dataset.json", check=False).returncode == 0:
        log(f"{node.name}: booted through the agent already")
        return
    from infra.bootstrap import render_user_data

    user_data = render_user_data(account.settings(node.name))
    lab_endpoints = (f"SPOT_REDIS_AWS_ENDPOINT_URL={cloud.AWS_API_URL}", f"SPOT_REDIS_IMDS_URL={cloud.IMDS_URL}",
                     "SPOT_REDIS_BOOT_OPTIONS=--no-ssm-agent")  # fmt: skip
    log(f"{node.name}: booting through the host agent (user data, then `spot_redis.agent boot`)")
    started = time.monotonic()
    boot_log = host_dir(node) / "boot.log"
    with boot_log.open("w") as handle:
        result = subprocess.run(
            [*ssh_command(node), "env", *lab_endpoints, "bash", "-s"], input=user_data, text=True,
            stdout=handle, stderr=subprocess.STDOUT, timeout=AGENT_BOOT_TIMEOUT_S, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"lab: {node.name}: the agent's boot failed (exit {result.returncode}); see {boot_log}")
    log(f"{node.name}: booted through the agent in {time.monotonic() - started:.0f} s ({boot_log})")


def give_notice(name: str, in_seconds: float, rebalance: bool = False) -> None:
    from lab import imds

    node = topology.node(name)
    if imds.read_host(STATE / "imds", node.address) is None:
        raise SystemExit(
            f"lab: {name} has no metadata in the fake metadata service (it does not boot through the agent)"
        )
    if rebalance:
        notice = imds.give_rebalance(STATE / "imds", node.address)
    else:
        notice = imds.give_notice(STATE / "imds", node.address, in_seconds=in_seconds)
    log(f"{name}: {'rebalance recommendation' if rebalance else 'Spot interruption notice'} {notice}")


# --- secrets and the env file ---------------------------------------------------------------------------------


def ensure_secret(name: str, make) -> str:
    path = STATE / "secrets" / name
    if not path.exists():
        write_private(path, make())
    return path.read_text().strip()


def ensure_secrets() -> dict[str, str]:
    """Per-lab passwords, and webhook URLs whose paths carry a token, as real Slack and healthchecks.io URLs do."""
    values = {name: ensure_secret(name, lambda: secrets.token_urlsafe(24)) for name in PASSWORDS}
    for name, kind in WEBHOOKS.items():
        base = f"https://{topology.GATEWAY}:{topology.SINK_PORT}/{kind}"
        values[name] = ensure_secret(name, lambda base=base: f"{base}/{secrets.token_urlsafe(18)}")
    return values


def read_env() -> dict[str, str]:
    """.lab/env, as written by write_env."""
    return dict(line.split("=", 1) for line in (STATE / "env").read_text().splitlines() if "=" in line)


def write_env(passwords: dict[str, str], account: cloud.Account | None = None) -> None:
    redis = topology.node(account.current_host if account else "redis-1")
    monitor = topology.node("monitor-1")
    env = {
        "REDIS_HOST": redis.address,
        "REDIS_PORT": "6379",
        "REDIS_APP_USER": "app",
        "REDIS_APP_PASSWORD": passwords["redis_app_password"],
        "REDIS_ADMIN_USER": "admin",
        "REDIS_ADMIN_PASSWORD": passwords["redis_admin_password"],
        "REDIS_MONITOR_USER": "monitor",
        "LAB_CLIENT_NETNS": topology.node("client").netns,
        "LAB_OUTSIDER_NETNS": topology.node("outsider").netns,
        "LAB_INVENTORY": str(REPO / "inventories/lab"),
        "PROMETHEUS_URL": f"http://{monitor.address}:9090",
        "ALERTMANAGER_URL": f"http://{monitor.address}:9093",
        "LAB_SLACK_DIR": str(STATE / "slack"),
        "LAB_HEARTBEAT_DIR": str(STATE / "heartbeat"),
        "LAB_SSH_KEY": str(ssh_key()),
        "LAB_KNOWN_HOSTS": str(STATE / "ssh/known_hosts"),
        "LAB_AWS_ENDPOINT_URL": cloud.AWS_API_URL,
        "LAB_IMDS_URL": cloud.IMDS_URL,
        "LAB_EVENTS_QUEUE_URL": account.queue_url if account else "",
        "LAB_AWS_REGION": cloud.REGION,
    }
    write_private(STATE / "env", "".join(f"{key}={value}\n" for key, value in env.items()))


# --- commands -------------------------------------------------------------------------------------------------


def write_known_hosts(hosts: list[Node]) -> None:
    lines = [line for node in hosts for line in known_hosts_lines(node)]
    (STATE / "ssh/known_hosts").write_text("\n".join(lines) + "\n")


def wait_until_running(node: Node, deadline: float) -> None:
    wait_for_ssh(node, deadline)
    state = ssh(node, "timeout", "60", "systemctl", "is-system-running", "--wait", check=False).stdout.strip()
    if state != "running":
        raise SystemExit(f"lab: {node.name}: systemd says {state!r}, not running; see {host_dir(node)}/console.log")
    log(f"{node.name}: SSH answers, systemd says {state}")


def replace_host(name: str) -> None:
    """What the Auto Scaling group does to the stack's host, for a host converged by a push (solo-1): the host stops
    cleanly, its root disk is thrown away, and a new one boots from the base image with the same data disk. It then
    needs a converge, as a new instance needs its boot."""
    node = topology.node(name)
    if not node.boots or node.agent or not node.data_mount:
        raise SystemExit(f"lab: {name} is not a pushed host with a data disk; a drill replaces agent-booted hosts")
    running = nspawn_hosts()
    if name in running:
        stop([running[name][0]])
    shutil.rmtree(host_dir(node) / "rootfs")
    boot(node, ensure_rootfs(node, ensure_image()))
    write_known_hosts([n for n in HOSTS if (host_dir(n) / "rootfs").is_dir()])
    wait_until_running(node, time.monotonic() + BOOT_TIMEOUT_S)
    log(f"{name}: replaced (a new root disk, the same data disk)")


def check_no_foreign_hosts() -> None:
    """Refuse to adopt hosts that another checkout's lab booted: their keys and disks are not ours."""
    for name, (_, directory) in nspawn_hosts().items():
        if directory != str(host_dir(topology.node(name)) / "rootfs"):
            raise SystemExit(f"lab: {name} runs from {directory}, another checkout's lab; `make lab-down` first")


def up() -> None:
    started = time.monotonic()
    STATE.mkdir(exist_ok=True, mode=0o700)
    check_subnet_is_ours()
    check_no_foreign_hosts()
    ensure_nspawn_tmpfs()
    image = ensure_image()
    passwords = ensure_secrets()
    ensure_bridge()
    ensure_apt_proxy()
    ensure_webhook_sink()
    account = ensure_cloud(passwords)
    for node in NODES:
        ensure_netns(node)
    running = nspawn_hosts()
    hosts = hosts_to_run(account)
    for node in hosts:
        rootfs = ensure_rootfs(node, image)
        if node.name in running:
            log(f"{node.name}: already running")
        else:
            log(f"{node.name}: booting at {node.address}")
            boot(node, rootfs)
    write_known_hosts(hosts)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    for node in hosts:
        wait_until_running(node, deadline)
    for node in hosts:
        if node.agent:
            boot_through_agent(node, account)
    write_env(passwords, account)
    log(f"up in {time.monotonic() - started:.1f} s")


def stop(pids: list[int]) -> None:
    """SIGTERM (nspawn then shuts the host's systemd down cleanly), SIGKILL after a while, and wait for them to go."""
    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)


def lab_mounts() -> list[str]:
    """Mount points of the lab's data disks, wherever the checkout that made them is."""
    mountpoints = [line.split()[1].replace("\\040", " ") for line in Path("/proc/mounts").read_text().splitlines()]
    return [m for m in mountpoints if Path(m).name.startswith(DATA_DISK_PREFIX)]


def lab_loop_devices() -> list[str]:
    out = run("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE", capture=True).stdout
    return [fields[0] for fields in map(str.split, out.splitlines()) if f"/{DATA_DISK_PREFIX}" in fields[-1]]


def lab_links() -> list[str]:
    out = run("ip", "-o", "link", "show", capture=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith(topology.VETH_PREFIX) or n == topology.BRIDGE]


def lab_netns() -> list[str]:
    out = run("ip", "netns", "list", capture=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(topology.NETNS_PREFIX)]


def down() -> None:
    """Remove everything any lab made; keep going past failures, and say at the end what is left."""
    stop([pid for pid, _ in nspawn_hosts().values()] + lab_daemon_pids())
    for mountpoint in reversed(lab_mounts()):
        if run("umount", mountpoint, check=False).returncode != 0:
            run("umount", "--lazy", mountpoint, check=False)
    for device in lab_loop_devices():
        run("losetup", "--detach", device, check=False)
    for link in lab_links():
        run("ip", "link", "del", link, check=False)  # deleting one end of a veth removes both
    for netns in lab_netns():
        run("ip", "netns", "del", netns, check=False)
    if os.path.ismount(NSPAWN_RUN) and not nspawn_hosts():
        run("umount", NSPAWN_RUN, check=False)
    shutil.rmtree(STATE, ignore_errors=True)
    left = {
        "hosts": list(nspawn_hosts()), "daemons": lab_daemon_pids(), "mounts": lab_mounts(),
        "loop devices": lab_loop_devices(), "links": lab_links(), "namespaces": lab_netns(),
    }  # fmt: skip
    if any(left.values()):
        raise SystemExit(f"lab: down left these behind: { {k: v for k, v in left.items() if v} }")
    log("down: no host, namespace, veth, mount or loop device of the lab is left")


def status() -> None:
    print(f"hosts running: {', '.join(sorted(nspawn_hosts())) or 'none'}")
    print(f"namespaces:    {', '.join(lab_netns()) or 'none'}")
    print(f"links:         {', '.join(lab_links()) or 'none'}")
    print(f"mounts:        {', '.join(lab_mounts()) or 'none'}")
    print(f"apt proxy:     {'running' if daemon_pids(PROXY_SCRIPT, topology.APT_PROXY_PORT) else 'stopped'}")
    print(f"webhook sink:  {'running' if daemon_pids(SINK_SCRIPT, topology.SINK_PORT) else 'stopped'}")


def info() -> None:
    print(f"""
The lab is running. Settings and generated passwords: .lab/env (root only).
  ssh to a host:       ssh -i .lab/ssh/id_ed25519 -o UserKnownHostsFile=.lab/ssh/known_hosts \\
                         root@{topology.node("redis-1").address}
  Redis as the app:    set -a; . .lab/env; ip netns exec "$LAB_CLIENT_NETNS" \\
                         env REDISCLI_AUTH="$REDIS_APP_PASSWORD" \\
                         redis-cli -h "$REDIS_HOST" --user "$REDIS_APP_USER" PING
  converge again:      .venv/bin/ansible-playbook -i inventories/lab ansible/site.yml
  verify:              .venv/bin/pytest tests/verify --hosts=ansible://all --ansible-inventory=inventories/lab
  remove it all:       make lab-down""")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lab", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status", "info", "notice", "rebalance", "drill", "replace"))
    parser.add_argument("host", nargs="?", help="notice, rebalance, replace: the lab host (e.g. redis-1)")
    parser.add_argument("--in", dest="in_seconds", type=float, default=120, help="notice: seconds until the action")
    parser.add_argument("--variant", default="notice", help="drill: notice, hard-kill or lost-disk")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("lab: must run as root (namespaces, mounts and systemd-nspawn need it)")
    if args.command in ("notice", "rebalance", "replace") and not args.host:
        parser.error(f"{args.command} needs a HOST")
    if args.command == "replace":
        replace_host(args.host)
        return
    if args.command in ("notice", "rebalance"):
        give_notice(args.host, args.in_seconds, rebalance=args.command == "rebalance")
        return
    if args.command == "drill":
        from lab import drill

        drill.main(args.variant)
        return
    {"up": up, "down": down, "status": status, "info": info}[args.command]()


if __name__ == "__main__":
    main()
