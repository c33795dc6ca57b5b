"""The dated price file (prices.json next to this module) and the live alternative behind the same interface.

A price source answers `region(name)` with that region's entries: {"usd", "unit", "date", "source"} each, keyed as
in prices.json. `FilePrices` reads the file; `LivePrices` starts from it and asks AWS for what changes most (EC2
on-demand from the Price List API, Spot from the Spot price history) through clients handed to it, so that tests give
it stubs.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

PRICE_FILE = Path(__file__).with_name("prices.json")


class PriceError(ValueError):
    """A price the estimate needs is not in the source; the message says which and where."""


class PriceSource(Protocol):
    label: str

    def region(self, name: str) -> dict[str, Any]: ...

    def specs(self) -> dict[str, Any]: ...


class FilePrices:
    def __init__(self, path: Path = PRICE_FILE):
        self.path = Path(path)
        try:
            self.doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise PriceError(f"price file {self.path} does not exist") from None
        except ValueError as error:
            raise PriceError(f"price file {self.path} is not JSON ({error})") from None
        self.label = f"price file {_short(self.path)}"

    def region(self, name: str) -> dict[str, Any]:
        regions = self.doc.get("regions", {})
        if name not in regions:
            raise PriceError(
                f"region {name} is not in the {self.label} (it has {', '.join(sorted(regions))}); add its prices there"
            )
        return regions[name]

    def specs(self) -> dict[str, Any]:
        return {"instances": self.doc["instances"]["types"], "elasticacheNodes": self.doc["elasticacheNodes"]["types"]}


class LivePrices:
    """The file's prices, with EC2 on-demand and Spot prices of `instance_types` asked of AWS."""

    def __init__(
        self,
        base: FilePrices,
        *,
        pricing_client: Any,
        ec2_client: Any,
        availability_zone: str,
        instance_types: Iterable[str],
        today: datetime.date | None = None,
    ):
        self.base = base
        self.pricing = pricing_client
        self.ec2 = ec2_client
        self.availability_zone = availability_zone
        self.instance_types = tuple(instance_types)
        self.today = (today or datetime.datetime.now(datetime.UTC).date()).isoformat()
        self.label = f"AWS Price List API and Spot price history ({self.today}), else the {base.label}"

    def specs(self) -> dict[str, Any]:
        return self.base.specs()

    def region(self, name: str) -> dict[str, Any]:
        prices = json.loads(json.dumps(self.base.region(name)))  # a copy
        for instance_type in self.instance_types:
            prices["ec2OnDemandHour"][instance_type] = {
                "usd": self.on_demand(name, instance_type),
                "unit": "instance-hour",
                "date": self.today,
                "source": "AWS Price List API, pricing:GetProducts (AmazonEC2, Linux, shared tenancy)",
            }
            prices["ec2SpotHour"][instance_type] = {
                "usd": self.spot(instance_type),
                "unit": "instance-hour",
                "date": self.today,
                "source": f"ec2:DescribeSpotPriceHistory, latest in {self.availability_zone} (Linux/UNIX)",
            }
        return prices

    def on_demand(self, region: str, instance_type: str) -> float:
        filters = {
            "instanceType": instance_type,
            "regionCode": region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "licenseModel": "No License required",
        }
        answer = self.pricing.get_products(
            ServiceCode="AmazonEC2",
            Filters=[{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in filters.items()],
            MaxResults=10,
        )
        for text in answer.get("PriceList", []):
            product = json.loads(text) if isinstance(text, str) else text
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dimension in term.get("priceDimensions", {}).values():
                    usd = float(dimension.get("pricePerUnit", {}).get("USD", "0"))
                    if usd > 0:
                        return usd
        raise PriceError(f"the Price List API has no on-demand Linux price for {instance_type} in {region}")

    def spot(self, instance_type: str) -> float:
        answer = self.ec2.describe_spot_price_history(
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX"],
            AvailabilityZone=self.availability_zone,
            StartTime=datetime.datetime.now(datetime.UTC),
            MaxResults=10,
        )
        history = sorted(answer.get("SpotPriceHistory", []), key=lambda item: item["Timestamp"], reverse=True)
        if not history:
            raise PriceError(f"no Spot price history for {instance_type} in {self.availability_zone}")
        return float(history[0]["SpotPrice"])


REPOSITORY = Path(__file__).resolve().parents[2]


def _short(path: Path) -> str:
    """The path as the repository names it (the same wherever the command runs), else as given."""
    try:
        return str(path.resolve().relative_to(REPOSITORY))
    except ValueError:
        return str(path)
