"""The building blocks every dashboard shares: data source, host variable, panel kinds, layout and rendering."""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as options
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)

# Every panel and the host variable query the Prometheus chosen on import, through this variable.
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
# The label the prometheus role puts on every target (its inventory hostname); the alert rules group by it too.
HOST_LABEL = "host"
HOST = f'{HOST_LABEL}=~"$host"'
TAGS = ["spot-redis"]

TIMESERIES_SIZE = (12, 8)  # width (of 24 columns), height
STAT_SIZE = (6, 5)
STATUS_MAPPINGS = [
    ValueMap(
        {
            "0": ValueMappingResult(text="failed", color="red", index=0),
            "1": ValueMappingResult(text="ok", color="green", index=1),
        }
    )
]
ON_OFF_MAPPINGS = [
    ValueMap(
        {
            "0": ValueMappingResult(text="off", color="orange", index=0),
            "1": ValueMappingResult(text="on", color="green", index=1),
        }
    )
]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel and the legend of its series."""

    expr: str
    legend: str = "{{host}}"


def targets(queries: list[Query], instant: bool = False) -> list[prometheus.Dataquery]:
    built = []
    for ref_id, query in zip("ABCDEFGH", queries, strict=False):
        target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref_id)
        built.append(target.instant() if instant else target.range())
    return built


def graph(title: str, unit: str, queries: list[Query], description: str = "") -> timeseries.Panel:
    """A time series panel: one line per series."""
    width, height = TIMESERIES_SIZE
    legend = common.VizLegendOptions().display_mode(options.LegendDisplayMode.LIST).show_legend(True)
    legend = legend.placement(options.LegendPlacement.BOTTOM).calcs([])
    tooltip = common.VizTooltipOptions().mode(options.TooltipDisplayMode.MULTI).sort(options.SortOrder.NONE)
    panel = timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
    return panel.targets(targets(queries)).legend(legend).tooltip(tooltip).span(width).height(height)


def single(title: str, unit: str, queries: list[Query], description: str = "", mappings=None) -> stat.Panel:
    """A stat panel: the latest value of each series, big (and its mapped text when mappings are given)."""
    width, height = STAT_SIZE
    reduce = common.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
    panel = stat.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
    panel = panel.targets(targets(queries, instant=True)).reduce_options(reduce).span(width).height(height)
    panel = panel.graph_mode(options.BigValueGraphMode.NONE).color_mode(options.BigValueColorMode.VALUE)
    return panel.mappings(mappings) if mappings else panel


def host_variable(metric: str) -> dashboard.QueryVariable:
    """The `host` variable: every host that has `metric`, several at once or all."""
    variable = dashboard.QueryVariable("host").label("Host").datasource(DATASOURCE)
    variable = variable.query(f"label_values({metric}, {HOST_LABEL})").multi(True).include_all(True)
    return variable.refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable(DATASOURCE_VARIABLE).label("Prometheus").type("prometheus")


@dataclass(frozen=True)
class Row:
    title: str
    panels: list


def build(uid: str, title: str, description: str, host_metric: str, rows: list[Row]) -> dict:
    """A whole dashboard as Grafana's JSON model (a dict), panels numbered from 1 in order."""
    board = dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS).editable()
    board = board.time("now-6h", "now").refresh("1m").timezone("browser")
    board = board.with_variable(datasource_variable()).with_variable(host_variable(host_metric))
    next_id = iter(range(1, 1000))
    for row in rows:
        board = board.with_row(dashboard.Row(row.title).id(next(next_id)))
        for panel in row.panels:
            board = board.with_panel(panel.id(next(next_id)))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render(model: dict) -> str:
    """Stable text for git: keys sorted, two-space indents, one newline at the end."""
    return json.dumps(model, indent=2, sort_keys=True) + "\n"
