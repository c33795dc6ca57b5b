"""The Grafana dashboards (spot_redis/dashboards): the files in dashboards/ are what the code makes now, each is a
dashboard Grafana can import, and every query parses (promtool, as recording rules).

Whether every query has data is for the lab: tests/lab/test_dashboards.py.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from spot_redis.dashboards import host, panels
from spot_redis.dashboards.catalog import (
    DASHBOARDS,
    PanelQuery,
    panel_queries,
    substitute,
    variable_queries,
    write,
)
from tests.lab.test_dashboards import problem  # the lab test's check itself, shown to fail where it should
from tests.unit.ansible.test_alert_rules import RULE_FILE, promtool  # noqa: F401 (promtool is a fixture)

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "dashboards"
PROMETHEUS_CONFIG = ROOT / "ansible/roles/prometheus/templates/prometheus.yml.j2"
MODELS = {name: build() for name, build in DASHBOARDS.items()}


def test_committed_dashboards_are_what_the_command_writes_now(tmp_path):
    write(tmp_path)
    fresh = {path.name: path.read_text() for path in tmp_path.glob("*.json")}
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.json")}
    assert committed == fresh, "dashboards/ is out of date: run `make dashboards` and commit the result"


def test_writing_removes_dashboards_no_longer_made(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    write(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(DASHBOARDS)


def test_the_output_is_the_same_every_time():
    assert {name: panels.render(build()) for name, build in DASHBOARDS.items()} == {
        name: panels.render(model) for name, model in MODELS.items()
    }


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_dashboard_is_importable_dashboard_json(name):
    model = json.loads((COMMITTED / name).read_text())
    assert model["uid"].startswith("spot-redis-") and len(model["uid"]) <= 40  # Grafana's uid limit
    assert model["title"] and model["schemaVersion"] >= 36
    assert isinstance(model["panels"], list) and model["panels"]
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)) and 0 not in ids


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_dashboard_asks_for_a_prometheus_and_a_host(name):
    variables = {variable["name"]: variable for variable in MODELS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["host"]["type"] == "query"
    assert re.fullmatch(r"label_values\(\w+, host\)", variables["host"]["query"])
    assert variables["host"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_panel_queries_the_chosen_prometheus(name):
    for panel in MODELS[name]["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)) and all(ref_ids), panel["title"]


def test_grafana_variables_are_all_known():
    """Every $variable in a query is one the tests can substitute, so the lab test runs every query as written."""
    for model in MODELS.values():
        for query in panel_queries(model):
            assert "$" not in substitute(query.expr, ["redis-1"]), query


def test_disk_panels_watch_the_file_systems_the_alert_rules_watch():
    in_rules = set(re.findall(r'fstype!~"[^"]*"', RULE_FILE.read_text()))
    assert in_rules == {host.FILESYSTEMS}


def test_the_host_label_is_the_one_prometheus_puts_on_targets():
    labels = re.findall(r"^\s+labels:\n\s+(\w+):", PROMETHEUS_CONFIG.read_text(), flags=re.MULTILINE)
    assert labels and set(labels) == {panels.HOST_LABEL}


def test_promtool_parses_every_query(promtool, tmp_path):  # noqa: F811 (the fixture imported above)
    queries = [q for model in MODELS.values() for q in [*panel_queries(model), *variable_queries(model)]]
    rules = [{"record": f"dashboard:query_{n}", "expr": substitute(q.expr, ["redis-1"])} for n, q in enumerate(queries)]
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


QUERY = PanelQuery("Redis", "Clients", "A", 'redis_connected_clients{host=~"$host"}')


def answer(*series: tuple[dict, str]) -> dict:
    result = [{"metric": metric, "value": [1.0, value]} for metric, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("prometheus_says", "found"),
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "bad_data: parse error"),
        (answer(), "no data"),
        (answer(({"host": "redis-1"}, "NaN")), "NaN"),
        (answer(({"host": "monitor-1"}, "1")), "no series for host redis-1"),
    ],
)
def test_the_lab_check_tells_each_kind_of_missing_data(prometheus_says, found):
    assert found in problem(prometheus_says, QUERY, "redis-1")


def test_the_lab_check_accepts_data_for_the_wanted_host():
    assert problem(answer(({"host": "redis-1"}, "3")), QUERY, "redis-1") is None
    assert problem(answer(({}, "1")), QUERY, None) is None
