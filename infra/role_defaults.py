"""The Ansible roles' defaults, read by the Pulumi program and the cost command where a fact is the role's: the one
place each is written (ansible/roles/<role>/defaults/main.yml)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parent.parent / "ansible" / "roles"


@cache
def _defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def role_default(role: str, variable: str) -> object:
    """A role's default value; a KeyError naming the file when the role has no such variable."""
    defaults = _defaults(role)
    if variable not in defaults:
        raise KeyError(f"ansible/roles/{role}/defaults/main.yml has no {variable}")
    return defaults[variable]
