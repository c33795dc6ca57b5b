"""What the lab is made of: its subnet, hosts and client namespaces.

inventories/lab/ and inventories/lab-solo/ name the same hosts and addresses; tests/unit/lab/test_topology.py
keeps them in step.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SUBNET = ipaddress.ip_network("10.213.37.0/24")
GATEWAY = "10.213.37.1"  # the machine's end of the lab bridge; the apt proxy listens here
BRIDGE = "srlab0"
NETNS_PREFIX = "srlab-"
VETH_PREFIX = "srl-"
APT_PROXY_PORT = 3142
SINK_PORT = 8443  # the lab's Slack and dead-man's-switch stand-ins (lab/webhook_sink.py)
AWS_API_PORT = 5000  # the local AWS API (lab/aws_api.py, moto's server)
IMDS_PORT = 8169  # the fake instance metadata service (lab/imds.py)
WHEELS_PORT = 8180  # the wheelhouse the agent-booted hosts install ansible-core from (lab/wheelhouse.py)
# The only upstream the hosts may reach, through the proxy: Debian's package registry.
APT_UPSTREAM_HOSTS = ("deb.debian.org",)


@dataclass(frozen=True)
class Node:
    """A network namespace on the lab bridge, with or without a booted host in it."""

    name: str
    address: str
    boots: bool = False
    data_mount: str | None = None  # where the host's separate data file system is mounted
    data_size_mib: int = 1024
    # Boots through the host agent (pull mode, as on AWS): its data disk is a volume in the local AWS API, attached
    # by the agent, instead of a file system the lab binds in.
    agent: bool = False

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return VETH_PREFIX + self.name


NODES = (
    Node("redis-1", "10.213.37.11", boots=True, data_mount="/srv/redis", agent=True),
    # The replacement instance of an interruption drill (lab/drill.py), booted by the drill, not by `lab up`; a
    # drill from redis-2 replaces it with redis-1 again.
    Node("redis-2", "10.213.37.12", data_mount="/srv/redis", agent=True),
    Node("monitor-1", "10.213.37.21", boots=True),
    # Redis and monitoring on one host, the cheapest AWS layout (inventories/lab-solo).
    Node("solo-1", "10.213.37.31", boots=True, data_mount="/srv/redis"),
    Node("client", "10.213.37.51"),  # in the Redis allow-list
    Node("outsider", "10.213.37.61"),  # not in any allow-list
)

HOSTS = tuple(node for node in NODES if node.boots)


def node(name: str) -> Node:
    return next(n for n in NODES if n.name == name)
