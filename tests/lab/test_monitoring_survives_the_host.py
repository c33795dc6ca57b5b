"""The stack's host keeps its monitoring history and alert state on its data volume (spot_redis/agent/layout.py).

solo-1 is the stack's single-host layout (Redis and its monitoring on one host). `python -m lab replace solo-1`
does to it what the Auto Scaling group does to the stack's host: a clean stop, a new root disk (new machine id, no
packages), the same data disk. What proves that Prometheus's database survived rather than being filled again:
samples stamped before the replacement began; a new Prometheus can only record samples from its own start on.
"""

import json
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest

from lab import control
from lab.topology import node
from tests.lab.helpers import get_json, post_json, wait_for

SOLO = node("solo-1")
SOLO_INVENTORY = str(control.REPO / "inventories" / "lab-solo")
PROMETHEUS = f"http://{SOLO.address}:9090"
ALERTMANAGER = f"http://{SOLO.address}:9093"
SERIES = 'up{job="redis"}[10m]'


def samples_at(moment: float) -> list[list]:
    """[timestamp, value] pairs of redis's `up` in the ten minutes up to `moment`, as the database answers now."""
    query = urllib.parse.urlencode({"query": SERIES, "time": f"{moment:.3f}"})
    result = get_json(f"{PROMETHEUS}/api/v1/query?{query}")["data"]["result"]
    return result[0]["values"] if result else []


def tsdb_bytes(on_host) -> int:
    return int(on_host("solo-1", "du -sb /srv/redis/prometheus").stdout.split()[0])


def silence_ids() -> set[str]:
    return {s["id"] for s in get_json(f"{ALERTMANAGER}/api/v2/silences") if s["status"]["state"] == "active"}


@pytest.fixture(scope="module")
def solo(converge):
    first = converge(inventory=SOLO_INVENTORY)
    assert first.returncode == 0, first.output[-3000:]


def test_history_and_silences_outlive_a_new_root_disk(solo, converge, on_host):
    wait_for("five scrapes of solo-1's Redis", lambda: len(samples_at(time.time())) >= 5, bound_s=180)
    recorded_at = time.time() - 30  # well behind the newest scrape, so that no sample before it is still in flight
    before = samples_at(recorded_at)
    now = datetime.now(UTC)
    silence = {"matchers": [{"name": "alertname", "value": "LabSurvivesTheHost", "isRegex": False}],
               "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
               "createdBy": "tests/lab", "comment": "must outlive the host"}  # fmt: skip
    assert post_json(f"{ALERTMANAGER}/api/v2/silences", silence) == 200
    silenced = silence_ids()
    assert silenced
    machine_id = on_host("solo-1", "cat /etc/machine-id").stdout.strip()
    _report_disk_use(on_host)

    replaced_at = time.time()
    subprocess.run([sys.executable, "-m", "lab", "replace", "solo-1"], cwd=control.REPO, check=True, timeout=300)
    assert on_host("solo-1", "cat /etc/machine-id").stdout.strip() != machine_id, "not a new root disk"
    second = converge(inventory=SOLO_INVENTORY)
    assert second.returncode == 0, second.output[-3000:]

    after = samples_at(recorded_at)
    assert all(timestamp < replaced_at for timestamp, _ in before)
    assert after == before, "the samples recorded before the replacement are gone"
    assert silenced <= silence_ids(), "the silence made before the replacement is gone"


def _report_disk_use(on_host) -> None:
    """For docs/host-agent.md: what one Redis host's monitoring writes, printed with -s."""
    started = get_json(f"{PROMETHEUS}/api/v1/query?query=process_start_time_seconds%7Bjob%3D%22prometheus%22%7D")
    uptime = time.time() - float(started["data"]["result"][0]["value"][1])
    rate = get_json(f"{PROMETHEUS}/api/v1/query?query=rate(prometheus_tsdb_head_samples_appended_total%5B5m%5D)")
    series = get_json(f"{PROMETHEUS}/api/v1/query?query=prometheus_tsdb_head_series")
    print(json.dumps({"uptime_s": round(uptime), "tsdb_bytes": tsdb_bytes(on_host),
                      "samples_per_s": float(rate["data"]["result"][0]["value"][1]),
                      "head_series": int(series["data"]["result"][0]["value"][1])}))  # fmt: skip
