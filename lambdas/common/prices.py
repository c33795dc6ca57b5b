"""What an instance type costs per hour, on-demand and on Spot: a TABLE, not live prices.

The capacity function uses it to say what the on-demand fallback costs more than Spot. Its figures are those of
spot_redis/cost/prices.json (the Lambda's zip cannot read that file): change both, tests/unit/cost/test_prices.py
checks that they agree.

- Region ap-northeast-1 (the example stack's), Linux, USD per instance-hour, compiled 2026-12-05, m6g.medium and
  c7g.medium added 2026-12-06 (:data:`AS_OF`, the newest).
- On-demand: AWS's EC2 On-Demand pricing page, as copied into public static price tables (t3.small, t3.medium,
  t3a.small, t4g.small and t4g.medium agree in two of them; m7g.medium is half of m7g.large and t3a.medium twice
  t3a.small, as AWS prices the sizes of a family; c7g.medium likewise half of c7g.large). Not checked against the
  AWS Price List API here. m6g.medium (the tables disagreed on it) is an estimate: us-east-1's price times the
  region's t4g ratio. A type the table lacks is named in the message as one whose price is not known.
- Spot: a typical price, estimated as about a third of on-demand (the README's cost estimate: t4g.small about
  $0.007/h). The real one changes by zone and by hour: `aws ec2 describe-spot-price-history`.
"""

from __future__ import annotations

from dataclasses import dataclass

AS_OF = "2026-12-06"


@dataclass(frozen=True)
class HourlyPrice:
    on_demand: float
    spot: float

    @property
    def extra(self) -> float:
        """What on-demand costs more than Spot, per hour."""
        return round(self.on_demand - self.spot, 4)


PRICES: dict[str, dict[str, HourlyPrice]] = {
    "ap-northeast-1": {
        # arm64 (the default architecture)
        "t4g.small": HourlyPrice(on_demand=0.0216, spot=0.0070),
        "t4g.medium": HourlyPrice(on_demand=0.0432, spot=0.0140),
        "m6g.medium": HourlyPrice(on_demand=0.0495, spot=0.0159),
        "m7g.medium": HourlyPrice(on_demand=0.0536, spot=0.0172),
        "c7g.medium": HourlyPrice(on_demand=0.0476, spot=0.0152),
        "c7g.large": HourlyPrice(on_demand=0.0952, spot=0.0305),
        # x86_64
        "t3.small": HourlyPrice(on_demand=0.0272, spot=0.0087),
        "t3.medium": HourlyPrice(on_demand=0.0544, spot=0.0174),
        "t3a.small": HourlyPrice(on_demand=0.0245, spot=0.0078),
        "t3a.medium": HourlyPrice(on_demand=0.0490, spot=0.0157),
        "m6i.large": HourlyPrice(on_demand=0.1340, spot=0.0429),
    },
}


def hourly_price(region: str, instance_type: str) -> HourlyPrice | None:
    """The table's price of ``instance_type`` in ``region``; None when the table does not have it."""
    return PRICES.get(region, {}).get(instance_type)
