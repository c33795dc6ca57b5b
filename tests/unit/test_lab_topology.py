"""The lab's topology, its inventory and its allow-list agree with each other."""

import ipaddress
from pathlib import Path

import yaml

from lab import topology

INVENTORY = Path(__file__).resolve().parents[2] / "inventories" / "lab"


def inventory_hosts() -> dict[str, dict]:
    groups = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]
    return {name: {"group": group, **vars_} for group, body in groups.items() for name, vars_ in body["hosts"].items()}


def test_inventory_names_exactly_the_booted_hosts_at_their_addresses():
    assert {name: h["ansible_host"] for name, h in inventory_hosts().items()} == {
        node.name: node.address for node in topology.HOSTS
    }


def test_groups_are_those_the_playbook_expects():
    assert {name: h["group"] for name, h in inventory_hosts().items()} == {
        "redis-1": "redis",
        "monitor-1": "monitoring",
    }


def test_addresses_are_distinct_and_inside_the_lab_subnet():
    addresses = [node.address for node in topology.NODES] + [topology.GATEWAY]
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(a) in topology.SUBNET for a in addresses)


def test_allow_list_admits_the_client_and_not_the_outsider():
    allowed = yaml.safe_load((INVENTORY / "group_vars" / "redis.yml").read_text())["redis_allowed_cidrs"]
    networks = [ipaddress.ip_network(cidr) for cidr in allowed]
    assert any(ipaddress.ip_address(topology.node("client").address) in net for net in networks)
    assert not any(ipaddress.ip_address(topology.node("outsider").address) in net for net in networks)


def test_interface_names_fit_the_kernel_limit():
    assert all(len(node.veth) <= 15 for node in topology.NODES)
    assert len(topology.BRIDGE) <= 15
