"""The Prometheus alert rules: promtool accepts them and passes their tests, and every rule is tested both ways.

promtool comes from Debian's prometheus package, unpacked (not installed: that would start a server here) by
tools/debian-tool.sh, the same Prometheus 2.42 as on the hosts.
"""

import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULE_FILE = ROOT / "ansible/roles/prometheus/files/rules/spot-redis.rules.yml"
TEST_DIR = ROOT / "tests/alert_rules"
TEST_FILES = sorted(TEST_DIR.glob("*.test.yml"))
SEVERITIES = {"critical", "warning", "info"}
# Rules that fire by design all the time, so no case can show them quiet.
ALWAYS_FIRING = {"Watchdog"}


def _run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(result.args)}\nexit {result.returncode}\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def promtool() -> str:
    # The first call downloads and unpacks the package; later ones print the cached path.
    found = _run([str(ROOT / "tools/debian-tool.sh"), "prometheus", "promtool"], timeout=900)
    assert found.returncode == 0, _output(found)
    path = found.stdout.strip().splitlines()[-1]
    version = _run([path, "--version"])
    assert version.returncode == 0, _output(version)
    assert "promtool, version 2." in version.stdout + version.stderr, _output(version)
    return path


@cache
def _rules() -> list[dict]:
    document = yaml.safe_load(RULE_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alert_rules() -> list[dict]:
    return [rule for rule in _rules() if "alert" in rule]


@cache
def _test_documents() -> dict[Path, dict]:
    return {path: yaml.safe_load(path.read_text()) for path in TEST_FILES}


def _alert_cases() -> list[dict]:
    return [
        case
        for document in _test_documents().values()
        for group in document.get("tests") or []
        for case in group.get("alert_rule_test") or []
    ]


def test_the_rule_file_and_its_tests_exist() -> None:
    assert RULE_FILE.is_file()
    assert TEST_FILES, f"no *.test.yml in {TEST_DIR}"
    assert _alert_rules(), f"no alert rule in {RULE_FILE}"


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = _run([promtool, "check", "rules", str(RULE_FILE)])
    assert result.returncode == 0, _output(result)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_promtool_rule_tests_pass(promtool: str, test_file: Path) -> None:
    result = _run([promtool, "test", "rules", str(test_file)])
    assert result.returncode == 0, _output(result)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_each_test_file_tests_the_rule_file(test_file: Path) -> None:
    rule_files = [(test_file.parent / name).resolve() for name in _test_documents()[test_file]["rule_files"]]
    assert rule_files == [RULE_FILE]


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_every_rule_has_a_severity_and_tells_what_to_do(rule: dict) -> None:
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    for name in ("summary", "description"):
        assert isinstance(annotations.get(name), str), f"{rule['alert']} has no {name}"
        assert annotations[name].strip(), f"{rule['alert']} has an empty {name}"


def test_every_rule_is_tested_firing_and_quiet() -> None:
    names = {rule["alert"] for rule in _alert_rules()}
    cases = _alert_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert not names - firing, f"never tested firing: {sorted(names - firing)}"
    assert not names - ALWAYS_FIRING - quiet, f"never tested quiet: {sorted(names - ALWAYS_FIRING - quiet)}"
    assert not (firing | quiet) - names, f"tests of rules that do not exist: {sorted((firing | quiet) - names)}"


def test_always_firing_rules_are_what_they_say() -> None:
    for rule in _alert_rules():
        if rule["alert"] in ALWAYS_FIRING:
            assert rule["expr"].strip() == "vector(1)"
            assert not rule.get("for")


def test_alerts_carry_the_host_label_for_inhibition() -> None:
    # promtool compares the labels exactly, so an expected `host` proves the alert has one.
    for case in _alert_cases():
        if case["alertname"] in ALWAYS_FIRING:
            continue
        for alert in case.get("exp_alerts") or []:
            assert alert.get("exp_labels", {}).get("host"), f"{case['alertname']} at {case['eval_time']}: no host"
