"""Lint IAM policy documents with parliament (core and community auditors), for the unit tests.

``parliament_findings(document)`` returns one line per finding at or above ``min_severity``, after
the explicit allow-list below; an empty list means the document passes. Shared by the tests of
``infra/iam_documents.py`` and by the Pulumi mocked-program test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import parliament
import yaml
from parliament import analyze_policy_string, is_arn_match

# Parliament's own order (parliament.cli.is_finding_filtered).
SEVERITIES = ("MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")

# Severity of every issue code: parliament's config.yaml plus the community auditors' own file.
# Loaded here rather than through parliament.override_config, which would change parliament's global state.
_PARLIAMENT_DIR = Path(parliament.__file__).parent
_ISSUE_SEVERITY: dict[str, str] = {
    issue: settings["severity"]
    for path in (_PARLIAMENT_DIR / "config.yaml", _PARLIAMENT_DIR / "community_auditors" / "config_override.yaml")
    for issue, settings in yaml.safe_load(path.read_text()).items()
}

# Parliament rates these LOW, but for documents we generate they are bugs: a misspelt action or service
# prefix grants nothing, and the feature that needs it fails at run time on AWS, not here.
SEVERITY_OVERRIDES = {"UNKNOWN_ACTION": "MEDIUM", "UNKNOWN_PREFIX": "MEDIUM"}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_trust_policy(document: dict[str, Any]) -> bool:
    return all(
        "Principal" in s
        and "Resource" not in s
        and "NotResource" not in s
        and _as_list(s.get("Action")) == ["sts:AssumeRole"]
        for s in _statements(document)
    )


def _passrole_is_scoped(document: dict[str, Any]) -> bool:
    """Every statement that can allow iam:PassRole names concrete roles and the service they go to."""
    for s in _statements(document):
        actions = [a.lower() for a in _as_list(s.get("Action", []))]
        if not any(a in ("iam:passrole", "iam:*", "*", "iam:pass*") for a in actions) and "NotAction" not in s:
            continue
        resources = _as_list(s.get("Resource", "*"))
        passed_to = s.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
        if "NotResource" in s or any("*" in r or "?" in r or ":role/" not in r for r in resources) or not passed_to:
            return False
    return True


def _allowed_elsewhere(document: dict[str, Any], action: str, required_format: str) -> bool:
    """Some Allow statement of the document grants ``action`` on a resource of ``required_format``."""
    for s in _statements(document):
        actions = [a.lower() for a in _as_list(s.get("Action", []))]
        if s.get("Effect") != "Allow" or action.lower() not in actions:
            continue
        if any(r != "*" and is_arn_match("", required_format, r) for r in _as_list(s.get("Resource", []))):
            return True
    return False


@dataclass(frozen=True)
class AllowedFinding:
    issue: str  # parliament's exact issue code
    reason: str
    applies: Callable[[Any, dict[str, Any]], bool]  # (finding, parsed document) -> is this the known false positive


# The only parliament findings ignored, each for one reason and only where that reason holds.
ALLOWED_FINDINGS = (
    # Parliament reads every document as an identity policy. A role trust policy has a Principal and, by
    # definition, no Resource; parliament's own code says so ("those don't have Resource elements, so that
    # would break other things"). Ignored only for pure sts:AssumeRole trust policies.
    AllowedFinding(
        issue="MALFORMED",
        reason="trust policies have no Resource element",
        applies=lambda finding, document: (
            finding.detail == "Statement contains neither Resource nor NotResource" and _is_trust_policy(document)
        ),
    ),
    # Parliament wants each statement to name every resource type an action requires. IAM authorizes each
    # resource of a request on its own, against all statements, and the tightest documents rely on that: the
    # data volume by ARN in one statement, tag-conditioned instances (or snapshots) in another. Ignored only when
    # every missing (action, resource type) pair is granted by another statement of the same document.
    AllowedFinding(
        issue="RESOURCE_MISMATCH",
        reason="required resource types split over statements of one document",
        applies=lambda finding, document: (
            isinstance(finding.detail, list)
            and bool(finding.detail)
            and all(_allowed_elsewhere(document, item["action"], item["required_format"]) for item in finding.detail)
        ),
    ),
    # The community auditor flags iam:PassRole whatever its resource and conditions. Passing a role is what
    # RunTask needs. Ignored only when every PassRole statement names concrete role ARNs and carries an
    # iam:PassedToService condition: iam:PassRole on "*" (or without the condition) is still reported.
    AllowedFinding(
        issue="PERMISSIONS_MANAGEMENT_ACTIONS",
        reason="iam:PassRole scoped to named roles and one service",
        applies=lambda finding, document: (
            [a.lower() for a in finding.location.get("actions", [])] == ["iam:passrole"]
            and _passrole_is_scoped(document)
        ),
    ),
)


def _severity(issue: str) -> str:
    return SEVERITY_OVERRIDES.get(issue) or _ISSUE_SEVERITY.get(issue, "CRITICAL")  # unknown code: fail loudly


def _is_allowed(finding: Any, document: dict[str, Any] | None) -> bool:
    return document is not None and any(
        allowed.issue == finding.issue and allowed.applies(finding, document) for allowed in ALLOWED_FINDINGS
    )


def parliament_findings(document: str, min_severity: str = "MEDIUM") -> list[str]:
    """Parliament findings of ``document`` at ``min_severity`` or worse, minus ALLOWED_FINDINGS."""
    threshold = SEVERITIES.index(min_severity.upper())
    try:
        parsed = json.loads(document)
    except ValueError:
        parsed = None  # parliament reports MALFORMED_JSON itself
    policy = analyze_policy_string(document, ignore_private_auditors=True, include_community_auditors=True)
    lines = []
    for finding in policy.findings:
        severity = _severity(finding.issue)
        if SEVERITIES.index(severity) < threshold or _is_allowed(finding, parsed):
            continue
        lines.append(f"{severity} {finding.issue}: {finding.detail} {finding.location}".rstrip())
    return lines


def assert_passes_parliament(document: str) -> None:
    findings = parliament_findings(document)
    assert not findings, "parliament findings:\n" + "\n".join(findings)
