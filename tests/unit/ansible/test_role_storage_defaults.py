"""The monitoring roles' storage defaults: the format the Pulumi program's volume sizing reads, and Debian's paths
for hosts without a data volume (the layout's paths are given only where the host monitors itself)."""

import re
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[3] / "ansible" / "roles"


def defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def argument_spec(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]


def test_the_retention_size_is_whole_gigabytes_or_megabytes():
    assert re.fullmatch(r"[1-9][0-9]*(GB|MB)", defaults("prometheus")["prometheus_storage_retention_size"])


def test_storage_paths_default_to_debians_and_are_documented():
    assert defaults("prometheus")["prometheus_storage_path"] == "/var/lib/prometheus/metrics2"
    assert defaults("alertmanager")["alertmanager_storage_path"] == "/var/lib/prometheus/alertmanager"
    for role, names in {
        "prometheus": ("prometheus_storage_path", "prometheus_storage_retention_size"),
        "alertmanager": ("alertmanager_storage_path",),
        "redis": ("redis_data_mount", "redis_data_dir"),
    }.items():
        options = argument_spec(role)["options"]
        for name in names:
            assert options[name]["default"] == defaults(role)[name], name
