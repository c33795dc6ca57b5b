"""Every query of every dashboard (dashboards/*.json, made by spot_redis/dashboards) against the lab's Prometheus on
monitor-1, which scrapes redis-1: each must succeed and have data for the lab's Redis host, as Grafana would ask
with that host selected in the `host` variable. A little read traffic first, so that the hit ratio has reads to
divide by."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request

from lab.topology import NODES
from spot_redis.dashboards.catalog import DASHBOARDS, PanelQuery, panel_queries, substitute, variable_queries

DATA_BOUND_S = 120  # a fresh lab's Prometheus may need a scrape or two more; then every query must have data
PROBE_KEY = "dashboards:probe"
# Queries that may have no data in a healthy, fresh lab, and why. None so far: add one only with its reason.
NO_DATA_EXPECTED: dict[str, str] = {}


def run_query(prometheus: str, expr: str) -> dict:
    """Prometheus' answer to an instant query, errors (HTTP 400 and 422) included."""
    assert prometheus.startswith("http://")
    body = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(f"{prometheus}/api/v1/query", data=body)  # noqa: S310 (checked just above)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def problem(answer: dict, query: PanelQuery, wanted_host: str | None) -> str | None:
    """What is wrong with a query's answer, or None: an error, no series, NaN, or no series for the wanted host."""
    if answer.get("status") != "success":
        return f"{query}: {answer.get('errorType')}: {answer.get('error')}"
    result = answer["data"]["result"]
    if not result:
        return f"{query}: no data"
    if any(math.isnan(float(series["value"][1])) for series in result):
        return f"{query}: NaN"
    hosts = {series["metric"].get("host") for series in result}
    if wanted_host and wanted_host not in hosts:
        return f"{query}: no series for host {wanted_host} (only {sorted(map(str, hosts))})"
    return None


def all_queries() -> list[PanelQuery]:
    models = [build() for build in DASHBOARDS.values()]
    return [query for model in models for query in [*panel_queries(model), *variable_queries(model)]]


def problems(prometheus: str, redis_host: str) -> list[str]:
    found = []
    for query in all_queries():
        if str(query) in NO_DATA_EXPECTED:
            continue
        wanted = redis_host if "$host" in query.expr else None
        answer = run_query(prometheus, substitute(query.expr, [redis_host]))
        if issue := problem(answer, query, wanted):
            found.append(issue)
    return found


def read_a_little(app) -> None:
    """One hit and one miss, so that the hit ratio has reads to divide by."""
    app("SET", PROBE_KEY, "1")
    app("GET", PROBE_KEY)
    app("GET", f"{PROBE_KEY}:missing")


def test_every_dashboard_query_has_data_for_the_lab_hosts(lab, app, capsys):
    redis_host = next(node.name for node in NODES if node.address == lab["REDIS_HOST"])
    deadline, found = time.monotonic() + DATA_BOUND_S, ["not run"]
    while found and time.monotonic() < deadline:
        read_a_little(app)
        found = problems(lab["PROMETHEUS_URL"], redis_host)
        if found:
            time.sleep(5)
    queries = all_queries()
    panel_count = len({(q.dashboard, q.panel) for q in queries if not q.panel.startswith("variable ")})
    with capsys.disabled():
        print(f"\ndashboards: {len(DASHBOARDS)}, panels: {panel_count}, queries checked: {len(queries)} "
              f"(of which {len(queries) - sum(1 for q in queries if q.ref_id)} host variables), "
              f"against {lab['PROMETHEUS_URL']} for {redis_host}")  # fmt: skip
    assert not found, "\n".join(found)
