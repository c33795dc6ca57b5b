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
import statistics
import subprocess

from lab.__main__ import STATE, ssh
from lab.topology import node

STOCK_PORT = 6380  # not guarded by the Redis table of the host firewall, which covers the role's port only
STOCK_DIR = "/var/lib/redis-stock-bench"  # on the lab host, removed afterwards
RESULT = re.compile(r"^(SET|GET): ([0-9.]+) requests per second", re.MULTILINE)


def read_env() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (STATE / "env").read_text().splitlines() if "=" in line)


def benchmark(netns: str, host: str, port: int, auth: list[str]) -> dict[str, float]:
    cmd = ["ip", "netns", "exec", netns, "redis-benchmark", "-h", host, "-p", str(port), *auth,
           "-q", "-n", "100000", "-t", "set,get"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    found = {name: float(rps) for name, rps in RESULT.findall(out.replace("\r", "\n"))}
    if set(found) != {"SET", "GET"}:
        raise SystemExit(f"bench: unexpected redis-benchmark output: {out[-500:]}")
    return found


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
    # redis-benchmark takes no password from the environment; -a puts the lab's own app password on its command line.
    app_auth = ["--user", env["REDIS_APP_USER"], "-a", env["REDIS_APP_PASSWORD"]]
    runs: dict[str, list[dict[str, float]]] = {"role": [], "stock": []}
    start_stock(redis_host)
    try:
        for _ in range(args.rounds):
            runs["role"].append(benchmark(netns, redis_host.address, port, app_auth))
            runs["stock"].append(benchmark(netns, redis_host.address, STOCK_PORT, []))
    finally:
        stop_stock(redis_host)
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
