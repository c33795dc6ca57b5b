"""Throughput of the role's Redis against Debian's stock configuration, on the same lab host.

    python -m lab.bench [--rounds 3]

From the allowed client's namespace, `redis-benchmark -q -n 100000 -t set,get`: once against the role's Redis
(as the application user, AOF everysec, ACLs), once against a second redis-server on the same host started
from the package's own redis.conf (unchanged but for the address, port and data directory it needs to run
beside the first). Prints requests per second (median of the rounds) and the ratio role / stock.
Needs a running, converged lab (`make lab`).
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import subprocess

from lab.control import read_env, ssh
from lab.topology import node

STOCK_PORT = 6380  # not guarded by the Redis table of the host firewall, which covers the role's port only
STOCK_DIR = "/var/lib/redis-stock-bench"  # on the lab host, removed afterwards
RESULT = re.compile(r"^(SET|GET): ([0-9.]+) requests per second", re.MULTILINE)


def benchmark(netns: str, host: str, port: int, auth: list[str]) -> dict[str, float]:
    cmd = ["ip", "netns", "exec", netns, "redis-benchmark", "-h", host, "-p", str(port), *auth,
           "-q", "-n", "100000", "-t", "set,get"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    found = {name: float(rps) for name, rps in RESULT.findall(out.replace("\r", "\n"))}
    if set(found) != {"SET", "GET"}:
        raise SystemExit(f"bench: unexpected redis-benchmark output: {out[-500:]}")
    return found


def admin_cli(env: dict[str, str], *args: str) -> str:
    target = ["-h", env["REDIS_HOST"], "-p", env["REDIS_PORT"], "--user", env["REDIS_ADMIN_USER"]]
    cmd = ["ip", "netns", "exec", env["LAB_CLIENT_NETNS"], "redis-cli", *target, *args]
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "REDISCLI_AUTH": env["REDIS_ADMIN_PASSWORD"]}
    return subprocess.run(cmd, env=environment, capture_output=True, text=True, check=True, timeout=30).stdout


def bench_user_like_app(env: dict[str, str]) -> tuple[str, str]:
    """A throwaway user with the app user's permissions: redis-benchmark takes its password only as -a, which any
    local user can read in /proc while it runs, so that password must not be one that outlives the benchmark."""
    app_rules = next(line.split()[2:] for line in admin_cli(env, "ACL", "LIST").splitlines()
                     if line.split()[1] == env["REDIS_APP_USER"])  # fmt: skip
    rules = [rule for rule in app_rules if rule[0] not in "#>"]  # its password hashes
    user, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    admin_cli(env, "ACL", "SETUSER", user, "reset", *rules, f">{password}")
    return user, password


def start_stock(redis_host) -> None:
    """redis-server with the package's own redis.conf, extracted from the .deb (the role replaced the installed one)."""
    script = f"""
set -eu
rm -rf {STOCK_DIR} && mkdir -p {STOCK_DIR}/deb && cd {STOCK_DIR}
apt-get download -qq redis-server >/dev/null
dpkg-deb -x redis-server_*.deb deb
chown -R redis:redis {STOCK_DIR}
runuser -u redis -- redis-server deb/etc/redis/redis.conf --port {STOCK_PORT} --bind {redis_host.address} \
  --protected-mode no --dir {STOCK_DIR} --daemonize yes --pidfile {STOCK_DIR}/redis.pid \
  --logfile {STOCK_DIR}/redis.log --supervised no
"""
    result = ssh(redis_host, script, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench: could not start the stock redis-server: {result.stderr}")


def stop_stock(redis_host) -> None:
    ssh(redis_host, f"kill $(cat {STOCK_DIR}/redis.pid) 2>/dev/null; rm -rf {STOCK_DIR}", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = read_env()
    redis_host = node("redis-1")
    netns, port = env["LAB_CLIENT_NETNS"], int(env["REDIS_PORT"])
    user, password = bench_user_like_app(env)
    app_auth = ["--user", user, "-a", password]
    runs: dict[str, list[dict[str, float]]] = {"role": [], "stock": []}
    start_stock(redis_host)
    try:
        for _ in range(args.rounds):
            runs["role"].append(benchmark(netns, redis_host.address, port, app_auth))
            runs["stock"].append(benchmark(netns, redis_host.address, STOCK_PORT, []))
    finally:
        stop_stock(redis_host)
        admin_cli(env, "ACL", "DELUSER", user)
    median = {
        config: {test: statistics.median(run[test] for run in results) for test in ("SET", "GET")}
        for config, results in runs.items()
    }
    print(f"redis-benchmark -q -n 100000 -t set,get from {netns}, median of {args.rounds} rounds (requests/s)")
    for test in ("SET", "GET"):
        role, stock = median["role"][test], median["stock"][test]
        print(f"  {test}: role {role:,.0f}  stock {stock:,.0f}  role/stock {role / stock:.2f}")


if __name__ == "__main__":
    main()
