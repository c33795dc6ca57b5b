"""Every role's defaults/main.yml and meta/argument_specs.yml name the same variables, of the same types.

The spec is what Ansible checks a role's variables against before the role runs; the defaults are what the role
runs with when the inventory says nothing. A variable in one and not in the other is either never checked or never
given a value. A required variable has no default on purpose (the defaults file says so in a comment), so it is
the one kind that may be in the spec alone.

Where a default's YAML value shows its type (true, 9093, 0.6, [], {}, "text"), the spec's `type` must accept it. A
Jinja expression ("{{ ... }}") is a string to YAML whatever it renders to, so it says nothing of the type. Where the
spec repeats the default (`default:`), the two must be equal.
"""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES_DIR = ROOT / "ansible/roles"
# A role with either file; one whose name starts with "_" is a shared piece, not a role a play names.
ROLES = sorted(
    path.name
    for path in ROLES_DIR.iterdir()
    if not path.name.startswith("_")
    if (path / "defaults/main.yml").is_file() or (path / "meta/argument_specs.yml").is_file()
)

# The argument_spec types each YAML value's Python type may be declared as.
SPEC_TYPES_BY_YAML_TYPE = {
    bool: {"bool"},
    int: {"int"},
    float: {"float"},
    list: {"list"},
    dict: {"dict"},
    str: {"str", "path", "raw"},
}


def _defaults(role: str) -> dict:
    path = ROLES_DIR / role / "defaults/main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _spec_options(role: str) -> dict:
    specs = yaml.safe_load((ROLES_DIR / role / "meta/argument_specs.yml").read_text())
    return specs["argument_specs"]["main"].get("options") or {}


def _is_jinja(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


def _required(options: dict) -> set[str]:
    return {name for name, option in options.items() if option.get("required")}


def _name_differences(defaults: dict, options: dict) -> list[str]:
    only_in_defaults = sorted(set(defaults) - set(options))
    only_in_spec = sorted(set(options) - set(defaults) - _required(options))
    defaulted_required = sorted(_required(options) & set(defaults))
    return [
        *(f"{name}: in defaults/main.yml only" for name in only_in_defaults),
        *(f"{name}: in meta/argument_specs.yml only" for name in only_in_spec),
        *(f"{name}: required in meta/argument_specs.yml, yet given a default" for name in defaulted_required),
    ]


def _type_differences(defaults: dict, options: dict) -> list[str]:
    return [
        f"{name}: default {value!r} is YAML {type(value).__name__}, spec type {options[name].get('type', 'str')}"
        for name, value in defaults.items()
        if name in options and not _is_jinja(value)
        if options[name].get("type", "str") not in SPEC_TYPES_BY_YAML_TYPE[type(value)]
    ]


def _default_differences(defaults: dict, options: dict) -> list[str]:
    return [
        f"{name}: defaults/main.yml {value!r}, meta/argument_specs.yml {options[name]['default']!r}"
        for name, value in defaults.items()
        if name in options and "default" in options[name] and options[name]["default"] != value
    ]


def test_every_role_with_defaults_has_a_spec() -> None:
    assert ROLES, f"no role found under {ROLES_DIR}"
    missing = [role for role in ROLES if not (ROLES_DIR / role / "meta/argument_specs.yml").is_file()]
    assert not missing, f"roles with defaults/main.yml but no meta/argument_specs.yml: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_name_the_same_variables(role: str) -> None:
    differences = _name_differences(_defaults(role), _spec_options(role))
    assert not differences, f"role {role}: " + "; ".join(differences)


@pytest.mark.parametrize("role", ROLES)
def test_spec_types_accept_the_defaults(role: str) -> None:
    differences = _type_differences(_defaults(role), _spec_options(role))
    assert not differences, f"role {role}: " + "; ".join(differences)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_repeat_the_defaults_file(role: str) -> None:
    differences = _default_differences(_defaults(role), _spec_options(role))
    assert not differences, f"role {role}: " + "; ".join(differences)


def test_the_checks_find_what_they_look_for() -> None:
    defaults = yaml.safe_load("""
        port: "9093"
        fraction: 0.6
        enabled: true
        address: "{{ private_address }}"
        sources: []
        undeclared: 1
        name: redis
    """)
    options = {
        "port": {"type": "int"},
        "fraction": {"type": "int"},
        "enabled": {"type": "bool", "default": False},
        "address": {"type": "list"},
        "sources": {"type": "list", "default": []},
        "name": {"type": "str", "required": True},
        "undefaulted": {"type": "str"},
        "required_alone": {"type": "str", "required": True},
    }
    assert _name_differences(defaults, options) == [
        "undeclared: in defaults/main.yml only",
        "undefaulted: in meta/argument_specs.yml only",
        "name: required in meta/argument_specs.yml, yet given a default",
    ]
    assert _type_differences(defaults, options) == [
        "port: default '9093' is YAML str, spec type int",
        "fraction: default 0.6 is YAML float, spec type int",
    ]
    assert _default_differences(defaults, options) == ["enabled: defaults/main.yml True, meta/argument_specs.yml False"]
