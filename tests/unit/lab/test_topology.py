"""The lab's topology, its inventory and its allow-list agree with each other."""

import ipaddress
from pathlib import Path

import yaml

from lab import topology
from lab.topology import NODES, node
from spot_redis.agent import layout

REPO = Path(__file__).resolve().parents[3]
INVENTORIES = REPO / "inventories"


def inventory_hosts(name: str) -> dict[str, dict]:
    """host -> its variables and the groups it is in, from inventories/<name>/hosts.yml."""
    groups = yaml.safe_load((INVENTORIES / name / "hosts.yml").read_text())["all"]["children"]
    hosts: dict[str, dict] = {}
    for group, body in groups.items():
        for host, variables in body["hosts"].items():
            entry = hosts.setdefault(host, {"groups": set()})
            entry.update(variables or {})
            entry["groups"].add(group)
    return hosts


def test_the_lab_inventories_name_exactly_the_booted_hosts_at_their_addresses():
    named = {**inventory_hosts("lab"), **inventory_hosts("lab-solo")}
    assert {host: h["ansible_host"] for host, h in named.items()} == {
        node.name: node.address for node in topology.HOSTS
    }


def test_groups_are_those_the_playbook_expects():
    assert {host: h["groups"] for host, h in inventory_hosts("lab").items()} == {
        "redis-1": {"redis"},
        "monitor-1": {"monitoring"},
    }
    assert {host: h["groups"] for host, h in inventory_hosts("lab-solo").items()} == {"solo-1": {"redis", "monitoring"}}


def test_the_single_host_inventory_shares_the_lab_variables():
    assert (INVENTORIES / "lab-solo" / "group_vars").resolve() == (INVENTORIES / "lab" / "group_vars").resolve()


def test_addresses_are_distinct_and_inside_the_lab_subnet():
    addresses = [node.address for node in topology.NODES] + [topology.GATEWAY]
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(a) in topology.SUBNET for a in addresses)


def test_allow_list_admits_the_client_and_not_the_outsider():
    allowed = yaml.safe_load((INVENTORIES / "lab" / "group_vars" / "redis.yml").read_text())["redis_allowed_cidrs"]
    networks = [ipaddress.ip_network(cidr) for cidr in allowed]
    assert any(ipaddress.ip_address(topology.node("client").address) in net for net in networks)
    assert not any(ipaddress.ip_address(topology.node("outsider").address) in net for net in networks)


def test_interface_names_fit_the_kernel_limit():
    assert all(len(node.veth) <= 15 for node in topology.NODES)
    assert len(topology.BRIDGE) <= 15


def test_the_single_host_keeps_its_monitoring_state_where_the_layout_says():
    """solo-1 monitors itself: its inventory names the layout's directories on its data mount, as the agent would."""
    host_vars = yaml.safe_load((INVENTORIES / "lab-solo" / "host_vars" / "solo-1.yml").read_text())
    mount = node("solo-1").data_mount
    assert host_vars == {
        "prometheus_storage_path": str(layout.prometheus_dir(mount)),
        "alertmanager_storage_path": str(layout.alertmanager_dir(mount)),
    }


def test_the_redis_role_defaults_to_the_layout_redis_directory():
    defaults = yaml.safe_load((REPO / "ansible/roles/redis/defaults/main.yml").read_text())
    assert defaults["redis_data_dir"] == "{{ redis_data_mount }}/" + layout.REDIS_DIR
    assert all(n.data_mount == defaults["redis_data_mount"] for n in NODES if n.data_mount)
