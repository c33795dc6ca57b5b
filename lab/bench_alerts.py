"""How fast the team hears that Redis is down, and back; and what Prometheus costs for one Redis host.

    python -m lab.bench_alerts [--rounds 3]

Each round: `systemctl stop redis-server` on redis-1, seconds until the lab's Slack stand-in receives the
RedisDown firing message; then `systemctl start redis-server`, seconds until the resolved message. Prints each
round and the medians, then the series Prometheus holds for redis-1 and Prometheus' resident memory.
Needs a running, converged lab (`make lab`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request
from pathlib import Path

from lab.control import read_env, ssh
from lab.topology import node
from lab.webhook_sink import slack_titles

BOUND_S = 300
SETTLE_S = 20  # let the exporter see Redis up for a few scrapes before the next round


def seconds_until_message(folder: Path, since_ns: int, status: str) -> float:
    title = f"[{status}] RedisDown on redis-1"
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        for arrived, found in slack_titles(folder, since_ns):
            if found.startswith(title):
                return (arrived - since_ns) / 1e9
        time.sleep(0.5)
    raise SystemExit(f"bench: no {title!r} message within {BOUND_S} s")


def query(prometheus_url: str, promql: str) -> float:
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the lab's own http:// URL)
        return float(json.load(response)["data"]["result"][0]["value"][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = read_env()
    slack, redis_host = Path(env["LAB_SLACK_DIR"]), node("redis-1")
    firing, resolved = [], []
    for round_number in range(1, args.rounds + 1):
        stopped = time.time_ns()
        ssh(redis_host, "systemctl stop redis-server")
        try:
            firing.append(seconds_until_message(slack, stopped, "FIRING"))
        finally:
            started = time.time_ns()
            ssh(redis_host, "systemctl start redis-server")
        resolved.append(seconds_until_message(slack, started, "RESOLVED"))
        print(f"round {round_number}: firing after {firing[-1]:.1f} s, resolved after {resolved[-1]:.1f} s", flush=True)
        time.sleep(SETTLE_S)
    print(f"median: firing {statistics.median(firing):.1f} s, resolved {statistics.median(resolved):.1f} s")
    prometheus = env["PROMETHEUS_URL"]
    series = query(prometheus, 'count({host="redis-1"})')
    head = query(prometheus, "prometheus_tsdb_head_series")
    rss = query(prometheus, 'process_resident_memory_bytes{job="prometheus"}')
    print(f"series for redis-1: {series:.0f} (all series in the head block: {head:.0f})")
    print(f"Prometheus resident memory: {rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
