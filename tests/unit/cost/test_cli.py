"""spot-redis cost from the command line: bad input is one line and exit 1, the JSON is Infracost's shape, --live
takes AWS's prices through the interface (stubs here), and the README's table is the command's output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spot_redis.cli.cost import main

EXAMPLE = Path("Pulumi.example.yaml").read_text()
ARM_TYPES = "    - t4g.small\n    - t4g.medium\n    - m6g.medium\n"


def stack_file(tmp_path: Path, text: str, name: str = "Pulumi.test.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "{tmp}/Pulumi.missing.yaml"], "no such stack file"),
        (["--config", "{eu}"], "region eu-west-3 is not in the price file"),
        (["--config", "{badkey}"], "spot-redis:snapshotRetain: unknown key"),
        (["--config", "{badvalue}"], "spot-redis:snapshotRetainCount: expected a whole number"),
        (["--config", "{unpriced}"], "instance type c6gn.medium is not in the price file's instance table"),
        (["--config", "{notastack}"], "expected a stack file named Pulumi.<stack>.yaml"),
        (["--config", "Pulumi.example.yaml", "--month", "2027-13"], "is not a month YYYY-MM"),
        (["--config", "Pulumi.example.yaml", "--rate", "0"], "--rate 0 must be more than 0"),
        (["--config", "Pulumi.example.yaml", "--snapshot-change-rate", "2"], "must be between 0 and 1"),
        (["--config", "Pulumi.example.yaml", "--prices", "{tmp}/none.json"], "does not exist"),
        (["--config", "Pulumi.example.yaml", "--prices", "{notjson}"], "is not JSON"),
    ],
)
def test_every_bad_input_is_one_clear_line_and_exit_1(tmp_path, capsys, argv, message):
    files = {
        "tmp": str(tmp_path),
        "eu": stack_file(
            tmp_path,
            EXAMPLE.replace("aws:region: ap-northeast-1", "aws:region: eu-west-3").replace(
                "availabilityZone: ap-northeast-1a", "availabilityZone: eu-west-3a"
            ),
        ),
        "badkey": stack_file(tmp_path, EXAMPLE.replace("snapshotRetainCount:", "snapshotRetain:"), "Pulumi.k.yaml"),
        "badvalue": stack_file(
            tmp_path, EXAMPLE.replace("snapshotRetainCount: 14", "snapshotRetainCount: lots"), "Pulumi.v.yaml"
        ),
        "unpriced": stack_file(tmp_path, EXAMPLE.replace(ARM_TYPES, "    - c6gn.medium\n"), "Pulumi.u.yaml"),
        "notastack": stack_file(tmp_path, EXAMPLE, "stack.yaml"),
        "notjson": stack_file(tmp_path, "{", "prices.json"),
    }
    code = main([arg.format(**files) for arg in argv])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("spot-redis cost: "), err
    assert message in err


def test_the_json_has_infracost_shape(capsys):
    assert main(["--config", "Pulumi.example.yaml", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["version"] == "0.2" and document["currency"] == "USD"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["timeGenerated"])
    (project,) = document["projects"]
    breakdown = project["breakdown"]
    total = 0.0
    for resource in breakdown["resources"]:
        assert {"name", "resourceType", "hourlyCost", "monthlyCost", "costComponents"} <= set(resource)
        parts = 0.0
        for component in resource["costComponents"]:
            for key in ("name", "unit", "monthlyQuantity", "price", "monthlyCost", "hourlyQuantity", "hourlyCost"):
                assert isinstance(component[key], str), (key, component)
            assert float(component["monthlyQuantity"]) * float(component["price"]) == pytest.approx(
                float(component["monthlyCost"]), abs=1e-8
            )
            parts += float(component["monthlyCost"])
        assert float(resource["monthlyCost"]) == pytest.approx(parts, abs=1e-8)
        total += parts
    for totals in (breakdown, document):
        assert isinstance(totals["totalMonthlyCost"], str)
        assert float(totals["totalMonthlyCost"]) == pytest.approx(total, abs=1e-8)
        assert float(totals["totalHourlyCost"]) == pytest.approx(total / 730, abs=1e-8)
    extra = document["spotRedis"]
    assert extra["exchangeRate"] == {"currency": "JPY", "perUsd": 155.0}
    elasticache = next(o for o in extra["alternatives"] if o["name"].startswith("ElastiCache cache."))
    assert float(elasticache["percentOfElastiCache"]) == 100


class StubPricing:
    def __init__(self):
        self.calls = []

    def get_products(self, **kwargs):
        self.calls.append(kwargs)
        product = {"terms": {"OnDemand": {"x": {"priceDimensions": {"y": {"pricePerUnit": {"USD": "0.0300000000"}}}}}}}
        return {"PriceList": [json.dumps(product)]}


class StubEc2:
    def __init__(self):
        self.calls = []

    def describe_spot_price_history(self, **kwargs):
        self.calls.append(kwargs)
        return {
            "SpotPriceHistory": [
                {"SpotPrice": "0.0050", "Timestamp": "2027-01-01T00:00:00Z"},
                {"SpotPrice": "0.0090", "Timestamp": "2027-01-02T00:00:00Z"},
            ]
        }


def test_live_prices_come_through_the_interface(capsys):
    import argparse

    from spot_redis.cli.cost import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    pricing, ec2 = StubPricing(), StubEc2()
    args = parser.parse_args(["--config", "Pulumi.example.yaml", "--live", "--json"])
    assert run(args, aws_clients=(pricing, ec2)) == 0
    document = json.loads(capsys.readouterr().out)
    (host, *_) = document["projects"][0]["breakdown"]["resources"]
    assert host["costComponents"][0]["price"] == "0.009"  # the newest Spot price
    assert "DescribeSpotPriceHistory" in host["costComponents"][0]["priceSource"]
    on_demand = next(o for o in document["spotRedis"]["alternatives"] if o["name"].startswith("EC2 on-demand"))
    assert "$0.03/h" in on_demand["how"]
    filters = {f["Field"]: f["Value"] for f in pricing.calls[0]["Filters"]}
    assert filters["instanceType"] == "t4g.small" and filters["regionCode"] == "ap-northeast-1"
    assert ec2.calls[0]["AvailabilityZone"] == "ap-northeast-1a"


def test_the_readme_table_is_the_commands_output(capsys):
    assert main(["--config", "Pulumi.example.yaml", "--format", "markdown"]) == 0
    output = capsys.readouterr().out
    readme = Path("README.md").read_text()
    match = re.search(r"<!-- spot-redis cost: begin.*?-->\n\n(.*?)\n<!-- spot-redis cost: end -->", readme, re.S)
    assert match, "README.md has no cost table between its markers"
    assert match[1] == output, "run `python -m spot_redis.cli.cost --config Pulumi.example.yaml --format markdown`"


def test_a_given_month_counts_its_own_hours(capsys):
    assert main(["--config", "Pulumi.example.yaml", "--month", "2027-03"]) == 0
    assert "230.0 hours a month (Mon-Fri 09:00-19:00 Asia/Tokyo, 2027-03)" in capsys.readouterr().out
