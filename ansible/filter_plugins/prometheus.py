"""Jinja2 filter for the prometheus role's preflight: check alert rule files on the controller.

Pure Python and PyYAML (which Ansible needs anyway): the unit tests import this file without Ansible.

    {{ prometheus_rule_files | prometheus_rule_file_problems }}
        -> ['/path/broken.rules.yml: not valid YAML: while parsing a flow sequence ... line 3, column 12']

A full check (expressions, templates, durations) is promtool's, on the host, before a file is installed.
This one runs first and catches what would otherwise fail half-way through a run: a file that is missing,
unreadable or not YAML, or that has no ``groups`` list.
"""

import yaml

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - exercised when imported without Ansible

    class AnsibleFilterError(ValueError):
        """Stand-in used when Ansible is not installed (unit tests)."""


def _problem(path):
    """What is wrong with one rule file, or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as error:
        return f"{path}: cannot be read ({error.strerror or error})"
    except UnicodeDecodeError:
        return f"{path}: not UTF-8 text"
    except yaml.YAMLError as error:
        # One line: the parser's message spans several, with the position last.
        return f"{path}: not valid YAML: {' '.join(str(error).split())}"
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        return f"{path}: no `groups` list at the top level"
    for index, group in enumerate(document["groups"]):
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) or not group["name"]:
            return f"{path}: groups[{index}] has no name"
        if not isinstance(group.get("rules"), list):
            return f"{path}: group {group['name']!r} has no `rules` list"
    return None


def prometheus_rule_file_problems(paths):
    """Return one ``'<path>: <problem>'`` string for each rule file that cannot be used, in the given order.

    A file is usable when it can be read as UTF-8, parses as YAML, and its top level is a mapping with a
    ``groups`` list, each group a mapping with a non-empty ``name`` and a ``rules`` list.
    """
    if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
        raise AnsibleFilterError(f"prometheus_rule_file_problems expects a list of paths, got {paths!r}")
    problems = []
    for path in paths:
        problem = _problem(str(path))
        if problem:
            problems.append(problem)
    return problems


class FilterModule:
    """Prometheus filters."""

    def filters(self):
        return {"prometheus_rule_file_problems": prometheus_rule_file_problems}
