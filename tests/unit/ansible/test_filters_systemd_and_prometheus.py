"""Unit tests for ansible/filter_plugins/systemd.py and prometheus.py (no Ansible needed)."""

import importlib.util
from pathlib import Path

import pytest

_DIR = Path(__file__).resolve().parents[3] / "ansible" / "filter_plugins"
RULES = Path(__file__).resolve().parents[3] / "ansible/roles/prometheus/files/rules/spot-redis.rules.yml"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"spot_redis_{name}_filters", _DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


systemd = _load("systemd")
prometheus = _load("prometheus")


# --- systemd_env_quote ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, quoted",
    [
        ("plain", '"plain"'),
        ("", '""'),
        ("with space  and #hash", '"with space  and #hash"'),
        ('dq"', '"dq\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("$HOME ${X}", '"\\$HOME \\${X}"'),
        ("`cmd`", '"\\`cmd\\`"'),
        ("single'quote", '"single\'quote"'),
        ("redis://127.0.0.1:6379", '"redis://127.0.0.1:6379"'),
    ],
)
def test_systemd_env_quote(value, quoted):
    # Checked against systemd 252 (Debian 12): EnvironmentFile= with these lines gives back the value.
    assert systemd.systemd_env_quote(value) == quoted


@pytest.mark.parametrize("value", ["two\nlines", "carriage\rreturn", "tab\there", "nul\0", "del\x7f"])
def test_systemd_env_quote_refuses_control_characters_without_showing_the_value(value):
    with pytest.raises(systemd.AnsibleFilterError) as raised:
        systemd.systemd_env_quote(value)
    assert value not in str(raised.value)


@pytest.mark.parametrize("value", [None, 42, ["a"]])
def test_systemd_env_quote_refuses_non_strings(value):
    with pytest.raises(systemd.AnsibleFilterError):
        systemd.systemd_env_quote(value)


# --- prometheus_rule_file_problems ------------------------------------------------------------------------------


def test_the_roles_rule_file_has_no_problem():
    assert prometheus.prometheus_rule_file_problems([str(RULES)]) == []


@pytest.mark.parametrize(
    "content, problem",
    [
        ("groups:\n  - name: broken\n    rules: [ {alert: Oops, expr: up == 0\n", "not valid YAML"),
        ("", "no `groups` list"),
        ("- just\n- a list\n", "no `groups` list"),
        ("groups: {name: x}\n", "no `groups` list"),
        ("groups:\n  - rules: []\n", "groups[0] has no name"),
        ("groups:\n  - name: g\n", "group 'g' has no `rules` list"),
    ],
)
def test_rule_file_problems(tmp_path, content, problem):
    path = tmp_path / "x.rules.yml"
    path.write_text(content)
    problems = prometheus.prometheus_rule_file_problems([str(path)])
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: ")
    assert problem in problems[0]
    assert "\n" not in problems[0]


def test_rule_file_problems_reports_a_missing_file_and_keeps_order(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text("groups: []\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [\n")
    missing = tmp_path / "missing.yml"
    problems = prometheus.prometheus_rule_file_problems([str(missing), str(good), str(bad)])
    assert [p.split(": ", 1)[0] for p in problems] == [str(missing), str(bad)]
    assert "cannot be read" in problems[0]


def test_rule_file_problems_refuses_a_string_instead_of_a_list():
    with pytest.raises(prometheus.AnsibleFilterError):
        prometheus.prometheus_rule_file_problems(str(RULES))
