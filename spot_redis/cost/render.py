"""An Estimate as text (aligned columns), Markdown (the README's table) or Infracost-shaped JSON."""

from __future__ import annotations

import datetime
from typing import Any

from spot_redis.cost.model import Estimate


def _money(usd: float) -> str:
    return f"{usd:,.2f}"


def _other(usd: float, rate: float) -> str:
    return f"{usd * rate:,.0f}"


def _quantity(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".") if value else "0"


def _price(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") if value else "0"


def rows(estimate: Estimate, rate: float, currency: str) -> tuple[list[list[str]], list[list[str]]]:
    """(cost lines, alternatives) as table rows, header first."""
    lines = [["line", "quantity", "unit", "USD/unit", "USD/month", f"{currency}/month"]]
    for resource in estimate.resources:
        for component in resource.components:
            label = (
                resource.name if len(resource.components) == 1 else f"{resource.name.split(' (')[0]}: {component.name}"
            )
            lines.append(
                [
                    label,
                    _quantity(component.monthly_quantity),
                    component.unit,
                    _price(component.price),
                    f"{component.monthly_cost:,.3f}",
                    _other(component.monthly_cost, rate),
                ]
            )
    total = estimate.monthly_cost
    lines.append(["**total**", "", "", "", f"**{_money(total)}**", f"**{_other(total, rate)}**"])
    elasticache = estimate.elasticache_cost
    options = [["instead", "hours", "USD/month", f"{currency}/month", "% of ElastiCache", "how"]]
    for option in estimate.alternatives:
        options.append(
            [
                option.name,
                f"{option.hours:.1f}",
                _money(option.monthly_cost),
                _other(option.monthly_cost, rate),
                f"{option.monthly_cost / elasticache:.0%}",
                option.how,
            ]
        )
    return lines, options


def heading(estimate: Estimate, rate: float, currency: str, price_label: str) -> list[str]:
    return [
        f"Stack `{estimate.stack}` in {estimate.region}: {estimate.hours:.1f} hours a month ({estimate.hours_label}).",
        f"Prices: {price_label}, dated {', '.join(estimate.price_dates)}. 1 USD = {rate:g} {currency} (--rate).",
    ]


def markdown(estimate: Estimate, rate: float, currency: str, price_label: str) -> str:
    lines, options = rows(estimate, rate, currency)
    out = [*heading(estimate, rate, currency, price_label), ""]
    out += [*_markdown_table(lines), "", *_markdown_table(options), "", "Assumptions:", ""]
    out += [f"- {text}" for text in estimate.assumptions]
    return "\n".join(out) + "\n"


def text(estimate: Estimate, rate: float, currency: str, price_label: str) -> str:
    lines, options = rows(estimate, rate, currency)
    out = [*heading(estimate, rate, currency, price_label), ""]
    out += _aligned([[cell.replace("**", "") for cell in row] for row in lines], numeric_from=1)
    out += ["", *_aligned(options, numeric_from=1, numeric_to=5), "", "Assumptions:"]
    out += [f"- {line}" for line in estimate.assumptions]
    return "\n".join(out).replace("`", "") + "\n"


def _markdown_table(table: list[list[str]]) -> list[str]:
    header, *body = table
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in body),
    ]


def _aligned(table: list[list[str]], numeric_from: int, numeric_to: int | None = None) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    numeric = range(numeric_from, numeric_to if numeric_to is not None else len(widths))
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    ]


def infracost_json(
    estimate: Estimate, rate: float, currency: str, price_label: str, config_path: str, now: datetime.datetime
) -> dict[str, Any]:
    """Infracost's breakdown JSON (version 0.2): projects -> breakdown -> resources -> costComponents, costs as
    strings; what Infracost has no place for (the alternatives, hours, assumptions, rate) under `spotRedis`."""
    hours_in_month = 730

    def number(value: float) -> str:
        return f"{value:.10f}".rstrip("0").rstrip(".") or "0"

    resources = []
    for resource in estimate.resources:
        components = [
            {
                "name": component.name,
                "unit": component.unit,
                "hourlyQuantity": number(component.monthly_quantity / hours_in_month),
                "monthlyQuantity": number(component.monthly_quantity),
                "price": number(component.price),
                "hourlyCost": number(component.monthly_cost / hours_in_month),
                "monthlyCost": number(component.monthly_cost),
                "priceSource": component.source,
            }
            for component in resource.components
        ]
        resources.append(
            {
                "name": resource.name,
                "resourceType": resource.resource_type,
                "tags": {"spot-redis:stack": estimate.stack},
                "metadata": {},
                "hourlyCost": number(resource.monthly_cost / hours_in_month),
                "monthlyCost": number(resource.monthly_cost),
                "costComponents": components,
            }
        )
    total = number(estimate.monthly_cost)
    hourly = number(estimate.monthly_cost / hours_in_month)
    summary = {"totalDetectedResources": len(resources), "totalSupportedResources": len(resources)}
    return {
        "version": "0.2",
        "metadata": {"infracostCommand": "breakdown", "generator": "spot-redis cost"},
        "currency": "USD",
        "projects": [
            {
                "name": f"spot-redis/{estimate.stack}",
                "metadata": {"path": config_path, "type": "pulumi_stack_config", "region": estimate.region},
                "pastBreakdown": None,
                "breakdown": {"resources": resources, "totalHourlyCost": hourly, "totalMonthlyCost": total},
                "diff": None,
                "summary": summary,
            }
        ],
        "totalHourlyCost": hourly,
        "totalMonthlyCost": total,
        "timeGenerated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summary": summary,
        "spotRedis": {
            "region": estimate.region,
            "hours": number(estimate.hours),
            "hoursBasis": estimate.hours_label,
            "prices": price_label,
            "priceDates": list(estimate.price_dates),
            "exchangeRate": {"currency": currency, "perUsd": rate},
            "totalMonthlyCostOther": number(estimate.monthly_cost * rate),
            "alternatives": [
                {
                    "name": option.name,
                    "hours": number(option.hours),
                    "monthlyCost": number(option.monthly_cost),
                    "monthlyCostOther": number(option.monthly_cost * rate),
                    "percentOfElastiCache": number(100 * option.monthly_cost / estimate.elasticache_cost),
                    "how": option.how,
                }
                for option in estimate.alternatives
            ],
            "assumptions": list(estimate.assumptions),
        },
    }
