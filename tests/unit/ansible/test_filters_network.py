"""Unit tests for ansible/filter_plugins/network.py (no Ansible needed)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[3] / "ansible" / "filter_plugins" / "network.py"


def _load(name="spot_redis_network_filters"):
    spec = importlib.util.spec_from_file_location(name, _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


network = _load()


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.0/24", "10.0.0.5/32", "192.168.0.0/16", "2001:db8::/32", "2001:db8::5/128", "0.0.0.0/1"],
)
def test_invalid_cidrs_accepts_networks(entry):
    assert network.invalid_cidrs([entry]) == []


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.5",  # no prefix length
        "2001:db8::5",  # no prefix length
        "10.0.0.1/24",  # host bits set
        "2001:db8::1/64",  # host bits set
        "0.0.0.0/0",  # the world
        "::/0",  # the world
        "foo",
        "",
        "10.0.0.300/32",
        "10.0.0.0/33",
        " 10.0.0.0/24",
        "fe80::1%eth0/128",
        None,
        42,
    ],
)
def test_invalid_cidrs_rejects(entry):
    assert network.invalid_cidrs([entry]) == [entry]


def test_invalid_cidrs_keeps_order_and_returns_only_bad_entries():
    entries = ["10.0.0.0/24", "foo", "10.0.0.5", "2001:db8::/48", "::/0"]
    assert network.invalid_cidrs(entries) == ["foo", "10.0.0.5", "::/0"]


def test_invalid_cidrs_allow_addresses():
    entries = ["10.0.0.5", "2001:db8::5", "10.0.0.0/24", "10.0.0.1/24", "0.0.0.0/0", "bar"]
    assert network.invalid_cidrs(entries, allow_addresses=True) == ["10.0.0.1/24", "0.0.0.0/0", "bar"]


def test_invalid_cidrs_empty_and_none():
    assert network.invalid_cidrs([]) == []
    assert network.invalid_cidrs(None) == []


def test_invalid_cidrs_rejects_a_string_instead_of_a_list():
    with pytest.raises(network.AnsibleFilterError):
        network.invalid_cidrs("10.0.0.0/24")


def test_cidrs_of_family_splits_and_normalises():
    entries = ["10.0.0.0/24", "10.0.1.5", "2001:db8::5", "2001:DB8:1::/48", "10.0.2.7/24"]
    assert network.cidrs_of_family(entries, 4) == ["10.0.0.0/24", "10.0.1.5/32", "10.0.2.0/24"]
    assert network.cidrs_of_family(entries, 6) == ["2001:db8::5/128", "2001:db8:1::/48"]


def test_cidrs_of_family_accepts_family_as_string():
    assert network.cidrs_of_family(["10.0.0.1"], "4") == ["10.0.0.1/32"]


def test_cidrs_of_family_empty():
    assert network.cidrs_of_family([], 4) == []
    assert network.cidrs_of_family(None, 6) == []


@pytest.mark.parametrize("family", [5, 0, "x", None])
def test_cidrs_of_family_rejects_unknown_family(family):
    with pytest.raises(network.AnsibleFilterError):
        network.cidrs_of_family(["10.0.0.1"], family)


def test_cidrs_of_family_refuses_garbage_instead_of_dropping_it():
    with pytest.raises(network.AnsibleFilterError, match="foo"):
        network.cidrs_of_family(["10.0.0.1", "foo"], 4)


def test_filter_module_exposes_the_filters():
    filters = network.FilterModule().filters()
    assert filters["invalid_cidrs"] is network.invalid_cidrs
    assert filters["cidrs_of_family"] is network.cidrs_of_family
    assert filters["host_port"] is network.host_port


def test_works_without_ansible(monkeypatch):
    # None in sys.modules makes "import ansible.errors" raise ImportError.
    monkeypatch.setitem(sys.modules, "ansible", None)
    monkeypatch.setitem(sys.modules, "ansible.errors", None)
    standalone = _load("spot_redis_network_filters_standalone")
    assert issubclass(standalone.AnsibleFilterError, ValueError)
    assert standalone.invalid_cidrs(["10.0.0.5"]) == ["10.0.0.5"]
    with pytest.raises(ValueError):
        standalone.cidrs_of_family(["foo"], 4)


@pytest.mark.parametrize("entry", ["127.0.0.1", "10.0.0.5", "-10.0.0.5", "::1", "-::1", "fd00::5"])
def test_invalid_bind_addresses_accepts_single_addresses(entry):
    assert network.invalid_bind_addresses([entry]) == []


WILDCARDS = ["0.0.0.0", "-0.0.0.0", "::", "-::", "::0", "0:0::0", "*"]  # noqa: S104 (what must be refused)


@pytest.mark.parametrize("entry", [*WILDCARDS, "dead", "1.2.3", "10.0.0.0/24", "", 42])
def test_invalid_bind_addresses_rejects_wildcards_and_non_addresses(entry):
    assert network.invalid_bind_addresses(["127.0.0.1", entry]) == [entry]


@pytest.mark.parametrize(
    "address, port, expected",
    [
        ("10.0.0.5", 9100, "10.0.0.5:9100"),
        ("10.0.0.5", "9121", "10.0.0.5:9121"),  # an inventory or extra var may give the port as a string
        ("127.0.0.1", " 9090 ", "127.0.0.1:9090"),
        ("2001:db8::5", 9093, "[2001:db8::5]:9093"),
        ("::1", 9090, "[::1]:9090"),
        ("fd00::5", 9100, "[fd00::5]:9100"),
        ("[2001:db8::5]", 9093, "[2001:db8::5]:9093"),  # already in brackets: not twice
        ("localhost", 9093, "localhost:9093"),
        ("monitor-1.internal", 9090, "monitor-1.internal:9090"),
    ],
)
def test_host_port(address, port, expected):
    assert network.host_port(address, port) == expected


@pytest.mark.parametrize(
    "address, port",
    [
        ("10.0.0.5", "http"),
        ("10.0.0.5", ""),
        ("10.0.0.5", None),
        ("10.0.0.5", True),
        ("10.0.0.5", 9100.5),  # int() would silently drop the fraction
        ("", 9100),
        (" 10.0.0.5", 9100),
        (None, 9100),
        (["10.0.0.5"], 9100),
    ],
)
def test_host_port_refuses_what_cannot_be_a_target(address, port):
    with pytest.raises(network.AnsibleFilterError):
        network.host_port(address, port)


def test_no_role_or_template_builds_host_port_by_hand():
    """host:port is built by the host_port filter only, so that an IPv6 address always gets its brackets."""
    ansible_dir = _PATH.parents[1]
    by_hand = [
        str(path.relative_to(ansible_dir))
        for path in sorted(ansible_dir.rglob("*"))
        if path.suffix in {".yml", ".j2"} and ("'[' ~" in path.read_text() or '"[" ~' in path.read_text())
    ]
    assert not by_hand, f"build host:port with the host_port filter: {by_hand}"
