"""The cheapest AWS layout: Redis, its exporters, Prometheus and Alertmanager on one host (solo-1), converged by
the same site.yml, idempotent, and passing the same testinfra suite."""

import subprocess

import pytest

from lab import control
from lab.topology import node
from tests.lab.helpers import get_json, wait_for

SOLO_INVENTORY = str(control.REPO / "inventories" / "lab-solo")


@pytest.fixture(scope="module")
def solo(converge):
    first = converge(inventory=SOLO_INVENTORY)
    assert first.returncode == 0, first.output[-3000:]
    return first


def test_second_converge_of_the_single_host_changes_nothing(solo, converge):
    second = converge(inventory=SOLO_INVENTORY)
    assert second.returncode == 0, second.output[-3000:]
    assert second.recap() == {"solo-1": {**second.recap()["solo-1"], "changed": 0}}


def test_single_host_passes_the_verify_suite(solo):
    verify = subprocess.run(
        ["pytest", "-q", "tests/verify", "--hosts=ansible://all", f"--ansible-inventory={SOLO_INVENTORY}"],
        cwd=control.REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout[-4000:]


def test_single_host_prometheus_scrapes_its_own_redis(solo):
    def all_up():
        url = f"http://{node('solo-1').address}:9090/api/v1/targets"
        targets = get_json(url)["data"]["activeTargets"]
        return targets if len(targets) == 3 and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("solo-1's three targets up", all_up, bound_s=90)
    assert {t["labels"]["job"] for t in targets} == {"prometheus", "node", "redis"}
