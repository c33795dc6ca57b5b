"""tests/verify: the testinfra suite for any inventory (the lab's, or the AWS hosts').

    pytest tests/verify --hosts=ansible://all --ansible-inventory=inventories/lab

Tests read what they check from the host itself (its config files, interfaces, sockets), never from
the lab's files, so that they mean the same on the real hosts. Each test module names the inventory
group it is about; on hosts outside that group its tests are skipped.
"""

import contextlib

import pytest


@pytest.fixture(scope="module")
def groups(host) -> set[str]:
    return set(host.ansible.get_variables().get("group_names", []))


@pytest.fixture(autouse=True)
def only_for_its_group(request, groups):
    group = getattr(request.module, "GROUP", None)
    if group and group not in groups:
        pytest.skip(f"not in group {group}")


@pytest.fixture(scope="module")
def as_root(host):
    """A context in which commands run as root: sudo where the connection user is not root (the lab has no sudo)."""
    is_root = host.check_output("id -u") == "0"
    return contextlib.nullcontext if is_root else host.sudo
