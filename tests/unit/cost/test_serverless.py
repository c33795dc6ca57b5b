"""spot-redis cost for the valkey-serverless engine: the arithmetic by hand, the limits that cap it, the lines shared
with the Spot host's estimate held equal, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.serverless import alarm_thresholds
from spot_redis.cli.cost import main
from spot_redis.cost import model, serverless
from spot_redis.cost.prices import FilePrices, PriceError
from spot_redis.cost.stack_file import load_stack_file
from spot_redis.events import CACHE_ALARMS

STACK = """\
config:
  aws:region: ap-northeast-1
  spot-redis:engine: valkey-serverless
  spot-redis:vpcId: vpc-0a1b2c3d4e5f60718
  spot-redis:subnetId: subnet-0a1b2c3d4e5f60718
  spot-redis:availabilityZone: ap-northeast-1a
  spot-redis:cacheSubnetIds: [subnet-0a1b2c3d4e5f60718, subnet-0b1b2c3d4e5f60718]
  spot-redis:cacheMaxDataGb: {max_gb}
  spot-redis:redisAllowedCidrs: [10.20.0.0/16]
  spot-redis:snapshotRetainCount: 14
  spot-redis:namespace: staging.internal
"""
GB_HOUR, ECPU_MILLION, SNAPSHOT_GB = 0.1, 0.0028, 0.085  # prices.json, ap-northeast-1


def stack_file(tmp_path: Path, max_gb: int = 5) -> Path:
    path = tmp_path / "Pulumi.serverless.yaml"
    path.write_text(STACK.format(max_gb=max_gb))
    return path


def run(tmp_path: Path, max_gb: int = 5, **workload: float) -> model.Estimate:
    config = load_stack_file(stack_file(tmp_path, max_gb))
    prices = FilePrices()
    return serverless.estimate(config, prices.region(config.region), prices.specs(), serverless.Workload(**workload))


def line(result: model.Estimate, starts: str) -> float:
    return sum(
        component.monthly_cost
        for resource in result.resources
        for component in resource.components
        if f"{resource.name.split(' (')[0]}: {component.name}".startswith(starts)
    )


@pytest.mark.parametrize(("dataset_gb", "billed_gb"), [(0.01, 0.1), (0.1, 0.1), (1, 1), (5, 5), (8, 5)])
def test_storage_is_billed_from_100_mb_up_to_the_limit(tmp_path, dataset_gb, billed_gb):
    result = run(tmp_path, dataset_gb=dataset_gb)
    assert line(result, "Valkey Serverless cache") == pytest.approx(billed_gb * 730 * GB_HOUR)
    assert line(result, "Cache snapshots") == pytest.approx(14 * min(dataset_gb, 5) * SNAPSHOT_GB)
    over = any("MORE than cacheMaxDataGb" in text for text in result.assumptions)
    assert over is (dataset_gb > 5)


def test_ecpus_follow_the_requests_until_the_limit_throttles(tmp_path):
    seconds = 730 * 3600
    assert line(run(tmp_path, requests_per_second=50), "Valkey Serverless cache: ElastiCache") == pytest.approx(
        50 * seconds / 1e6 * ECPU_MILLION
    )
    capped = run(tmp_path, requests_per_second=5000, ecpu_per_request=2)
    assert line(capped, "Valkey Serverless cache: ElastiCache") == pytest.approx(1000 * seconds / 1e6 * ECPU_MILLION)


def test_the_most_it_can_bill_is_the_limits_all_month(tmp_path):
    result = run(tmp_path, dataset_gb=1, requests_per_second=10)
    (at_limits,) = [a for a in result.alternatives if a.name == "the same at its usage limits"]
    others = result.monthly_cost - result.resources[0].monthly_cost
    assert at_limits.monthly_cost == pytest.approx(others + 5 * 730 * GB_HOUR + 1000 * 730 * 3600 / 1e6 * ECPU_MILLION)


def test_the_by_hand_figure_at_1_gb_and_50_requests_a_second(tmp_path):
    result = run(tmp_path, dataset_gb=1, requests_per_second=50)
    cache = 730 * GB_HOUR + 50 * 730 * 3600 / 1e6 * ECPU_MILLION
    snapshots, cloud_map, alarms = 14 * 1 * SNAPSHOT_GB, 0.5 + 0.1 + 0.1 * 0.4, 3 * 0.1
    lambda_sqs_dynamodb_sns_logs = 0.0002 + 125 * 0.0000133334 + 0.004 + 0.00143 + 0.000285 + 0.00005 + 0.038
    assert result.monthly_cost == pytest.approx(cache + snapshots + cloud_map + alarms + lambda_sqs_dynamodb_sns_logs)


def test_the_glue_counts_the_caches_alarms_too():
    prices = FilePrices()
    price, assumptions = model._Prices("ap-northeast-1", prices.region("ap-northeast-1")), model.Assumptions()
    (alarms,) = [
        c for c in model.glue(price, assumptions, extra_alarms=serverless.CACHE_ALARMS).components if "alarm" in c.name
    ]
    assert alarms.monthly_quantity == 1 + len(CACHE_ALARMS) == 3


def test_the_alarm_thresholds_are_below_the_limits_the_estimate_caps_at(tmp_path):
    config = load_stack_file(stack_file(tmp_path))
    thresholds = alarm_thresholds(config.cache)
    assert thresholds["cache-data-storage"] < config.cache.max_data_gb * 1e9
    assert thresholds["cache-ecpu"] < config.cache.max_ecpu_per_second * 60


def test_a_host_stack_is_not_priced_as_a_cache():
    prices = FilePrices()
    config = load_stack_file(Path("Pulumi.example.yaml"))
    with pytest.raises(PriceError, match="not valkey-serverless"):
        serverless.estimate(config, prices.region(config.region), prices.specs())


def test_the_command_prices_a_serverless_stack(tmp_path, capsys):
    path = stack_file(tmp_path)
    assert main(["--config", str(path), "--dataset-gb", "1", "--requests-per-second", "50", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    names = [resource["name"] for resource in document["projects"][0]["breakdown"]["resources"]]
    assert names[0].startswith("Valkey Serverless cache (at most 5 GB, 1,000 ECPU/s)")
    assert float(document["totalMonthlyCost"]) == pytest.approx(
        run(tmp_path, dataset_gb=1, requests_per_second=50).monthly_cost
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset-gb", "-1"], "--dataset-gb -1 must not be negative"),
        (["--requests-per-second", "-5"], "--requests-per-second -5 must not be negative"),
        (["--ecpu-per-request", "0"], "--ecpu-per-request 0 must be more than 0"),
    ],
)
def test_bad_workloads_are_one_line(tmp_path, capsys, argv, message):
    assert main(["--config", str(stack_file(tmp_path)), *argv]) == 1
    err = capsys.readouterr().err
    assert err == f"spot-redis cost: {message}\n"
