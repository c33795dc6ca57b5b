"""The price file: every entry dated and sourced, both regions complete, and the capacity Lambda's table agrees."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from spot_redis.cost.prices import FilePrices

sys.path.insert(0, str(Path("lambdas")))
from common.prices import AS_OF, PRICES


def test_every_entry_has_a_price_a_date_and_a_source():
    doc = FilePrices().doc
    assert {"ap-northeast-1", "us-east-1"} <= set(doc["regions"])
    keys = None
    for region, entries in doc["regions"].items():
        if keys is not None:
            assert set(entries) == keys, region
        keys = set(entries)
        for key, value in entries.items():
            for entry in value.values() if "usd" not in value else [value]:
                assert entry["usd"] >= 0 and entry["unit"], (region, key)
                assert date.fromisoformat(entry["date"]) <= date.today(), (region, key)
                assert entry["source"].startswith(("https://", "estimate")), (region, key)


def test_the_capacity_lambdas_prices_are_the_files():
    doc = FilePrices().doc
    for region, table in PRICES.items():
        entries = doc["regions"][region]
        assert set(table) == set(entries["ec2OnDemandHour"]) == set(entries["ec2SpotHour"]), region
        for instance_type, price in table.items():
            assert price.on_demand == entries["ec2OnDemandHour"][instance_type]["usd"], (region, instance_type)
            assert price.spot == entries["ec2SpotHour"][instance_type]["usd"], (region, instance_type)
        dates = {entry["date"] for kind in ("ec2OnDemandHour", "ec2SpotHour") for entry in entries[kind].values()}
        assert max(dates) == AS_OF, "the Lambda's table is as old as the newest price it copies"
