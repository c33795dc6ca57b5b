"""infra/volume_size.py: the data volume's default size from what it must hold, and the program that uses it."""

from __future__ import annotations

import pulumi
import pytest

from infra import volume_size
from infra.role_defaults import role_default
from tests.unit.pulumi_harness import run_program


def test_a_2_gib_host_needs_redis_room_and_monitoring_over_the_usable_share():
    need = volume_size.need(2)
    assert need.maxmemory_gib == pytest.approx(1.2)  # 0.6 x 2 GiB
    assert need.redis_gib == pytest.approx(4.8)  # AOF at twice its base + the rewrite's new base + dump.rdb
    assert need.monitoring_gib == pytest.approx(1.2)  # 1 GiB retention + a fifth
    assert need.size_gib == 7  # (4.8 + 1.2) / 0.93 = 6.45, rounded up


def test_the_size_grows_with_the_largest_type():
    assert volume_size.need(4).size_gib == 12  # (9.6 + 1.2) / 0.93 = 11.6
    assert volume_size.need(16).size_gib == 43  # (38.4 + 1.2) / 0.93 = 42.6
    sizes = [volume_size.need(memory).size_gib for memory in (0.5, 1, 2, 4, 8, 16, 32)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_the_facts_come_from_the_roles_defaults():
    assert volume_size.maxmemory_fraction() == 0.6
    assert volume_size.monitoring_retention_gib() == 1
    with pytest.raises(KeyError, match=r"ansible/roles/redis/defaults/main\.yml has no redis_nothing"):
        role_default("redis", "redis_nothing")


@pytest.mark.parametrize(("size", "gib"), [("1GB", 1), ("512MB", 0.5), ("20GB", 20)])
def test_prometheus_sizes(size, gib):
    assert volume_size.size_gib(size) == gib


@pytest.mark.parametrize("size", ["1G", "1.5GB", "1TB", "", "GB"])
def test_a_size_prometheus_would_not_take_is_refused(size):
    with pytest.raises(ValueError, match="is not a size such as 512MB or 1GB"):
        volume_size.size_gib(size)


def test_a_configured_size_is_kept_and_one_below_the_need_is_warned_about(monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    run = run_program({"spot-redis:dataVolumeSizeGib": 30})
    assert run.one("aws:ebs/volume:Volume").inputs["size"] == 30
    assert warnings == []

    run = run_program({"spot-redis:dataVolumeSizeGib": 5})
    assert run.one("aws:ebs/volume:Volume").inputs["size"] == 5
    [warning] = warnings
    assert warning.startswith("spot-redis:dataVolumeSizeGib: 5 GiB is less than the 12 GiB the data may need")


def test_a_2_gib_only_stack_gets_a_smaller_volume():
    run = run_program({"spot-redis:instanceTypes": ["t4g.small"]})
    assert run.one("aws:ebs/volume:Volume").inputs["size"] == 7
