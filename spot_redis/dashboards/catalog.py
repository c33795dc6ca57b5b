"""Every dashboard, by the name of its file in dashboards/."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spot_redis.dashboards import host, redis, stack
from spot_redis.dashboards.panels import render

DASHBOARDS: dict[str, Callable[[], dict]] = {
    "host.json": host.dashboard,
    "redis.json": redis.dashboard,
    "stack.json": stack.dashboard,
}


def rendered() -> dict[str, str]:
    """Each dashboard's file name and text."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def write(folder: Path) -> list[Path]:
    """Write every dashboard into folder and remove JSON files there that no dashboard makes any more."""
    folder.mkdir(parents=True, exist_ok=True)
    files = rendered()
    for stale in sorted(set(p.name for p in folder.glob("*.json")) - set(files)):
        (folder / stale).unlink()
    written = []
    for name, text in files.items():
        (folder / name).write_text(text)
        written.append(folder / name)
    return written


# What Grafana puts for its variables when it runs a query, for running the dashboards' queries elsewhere (the
# tests: promtool and the lab's Prometheus). $host gets the regex of the hosts wanted.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m"}
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>.+), *(?P<label>\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def panel_queries(model: dict) -> list[PanelQuery]:
    """Every target of every panel (rows left out), in order."""
    return [
        PanelQuery(model["title"], panel["title"], target["refId"], target["expr"])
        for panel in model["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def variable_queries(model: dict) -> list[PanelQuery]:
    """Each label_values(metric, label) variable as the PromQL that lists the same values."""
    found = []
    for variable in model["templating"]["list"]:
        if variable["type"] == "query" and (match := LABEL_VALUES.match(variable["query"])):
            expr = f"group by ({match['label']}) ({match['metric']})"
            found.append(PanelQuery(model["title"], f"variable {variable['name']}", "", expr))
    return found


def substitute(expr: str, hosts: list[str]) -> str:
    """The expression as Grafana sends it with `hosts` selected in the host variable (host names need no escaping
    in a regex: letters, digits and dashes)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr.replace("$host", "|".join(hosts))
