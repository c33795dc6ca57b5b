"""Checks of the configuration against the account, before any resource is declared.

`parse_config` can tell a malformed id from a good one, not a subnet in another VPC or zone from the right one. Such a
stack would be created whole and then fail at its first host: a data volume made in a zone where no host launches
(each host waits ten minutes for a volume it can never attach), a Cloud Map name that never resolves, a launch that
never finds its instance type. So `check` looks the account up at `pulumi preview` and stops the program with every
problem at once, each naming its key. The rules (`problems` and the functions it calls) are pure: they take the facts
looked up and can be tested without Pulumi.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pulumi_aws as aws

from infra.config import NAMESPACE, StackConfig


@dataclass(frozen=True)
class Problem:
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{NAMESPACE}:{self.key}: {self.reason}"


class PreflightError(ValueError):
    """The configuration does not match the account; the message lists every problem, one a line."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"the account does not match the configuration (nothing was created):\n{lines}")


@dataclass(frozen=True)
class Subnet:
    id: str
    vpc_id: str
    availability_zone: str


@dataclass(frozen=True)
class Vpc:
    id: str
    dns_support: bool
    dns_hostnames: bool


@dataclass(frozen=True)
class Namespace:
    """An existing private DNS namespace (existingNamespace): the stack adds its service to it."""

    id: str
    hosted_zone: str


@dataclass(frozen=True)
class AccountFacts:
    """What the account says; None where the look-up failed (`lookup_problems` says why)."""

    subnet: Subnet | None
    vpc: Vpc | None
    offered_instance_types: frozenset[str]  # of the configured ones, those offered in the configured zone
    architectures: Mapping[str, tuple[str, ...]]  # of each offered one
    memory_gib: Mapping[str, float] = field(default_factory=dict)  # of each offered one
    namespace: Namespace | None = None  # looked up only with existingNamespace
    lookup_problems: tuple[Problem, ...] = ()
    cache_subnets: tuple[Subnet, ...] = ()  # the valkey-serverless engine's cacheSubnetIds, as found


def problems(config: StackConfig, facts: AccountFacts) -> list[Problem]:
    found = list(facts.lookup_problems)
    if facts.subnet:
        found += subnet_problems(config, facts.subnet)
    if facts.vpc:
        found += vpc_problems(facts.vpc)
    found += instance_type_problems(config, facts.offered_instance_types, facts.architectures)
    found += cache_subnet_problems(config, facts.cache_subnets)
    return found


def cache_subnet_problems(config: StackConfig, subnets: Sequence[Subnet]) -> list[Problem]:
    """The serverless cache's subnets are in the stack's VPC and in different zones (it replicates across them)."""
    found = [
        Problem("cacheSubnetIds", f"{subnet.id} is in {subnet.vpc_id}, not in {config.vpc_id} (vpcId)")
        for subnet in subnets
        if subnet.vpc_id != config.vpc_id
    ]
    zones = {subnet.availability_zone for subnet in subnets}
    if len(subnets) > 1 and len(zones) < len(subnets):
        found.append(
            Problem(
                "cacheSubnetIds",
                f"{len(subnets)} subnets in {len(zones)} zone(s) ({', '.join(sorted(zones))}): name subnets in "
                "different Availability Zones, or the cache is not replicated across zones",
            )
        )
    return found


def subnet_problems(config: StackConfig, subnet: Subnet) -> list[Problem]:
    found = []
    if subnet.vpc_id != config.vpc_id:
        found.append(Problem("subnetId", f"{subnet.id} is in {subnet.vpc_id}, not in {config.vpc_id} (vpcId)"))
    if subnet.availability_zone != config.availability_zone:
        found.append(
            Problem(
                "availabilityZone",
                f"{config.availability_zone}, but the subnet {subnet.id} is in {subnet.availability_zone}: "
                "the data volume would be made in a zone where no host can attach it",
            )
        )
    return found


def vpc_problems(vpc: Vpc) -> list[Problem]:
    off = [
        attribute
        for attribute, enabled in (("enableDnsSupport", vpc.dns_support), ("enableDnsHostnames", vpc.dns_hostnames))
        if not enabled
    ]
    if not off:
        return []
    return [
        Problem(
            "vpcId",
            f"{vpc.id} has {' and '.join(off)} off: the private Cloud Map namespace (redis.<namespace>) resolves "
            "only when enableDnsSupport and enableDnsHostnames are both on (aws ec2 modify-vpc-attribute)",
        )
    ]


def instance_type_problems(
    config: StackConfig, offered: Collection[str], architectures: Mapping[str, Sequence[str]]
) -> list[Problem]:
    found = []
    for instance_type in config.instance_types:
        if instance_type not in offered:
            found.append(Problem("instanceTypes", f"{instance_type} is not offered in {config.availability_zone}"))
        elif config.architecture not in architectures[instance_type]:
            supported = ", ".join(architectures[instance_type]) or "no architecture"
            found.append(
                Problem("instanceTypes", f"{instance_type} runs {supported}, not {config.architecture} (architecture)")
            )
    return found


def check(config: StackConfig) -> AccountFacts:
    """Look the account up and stop the program, before any resource, if it does not match the configuration;
    returns the facts looked up."""
    facts = look_up(config)
    found = problems(config, facts)
    if found:
        raise PreflightError(found)
    return facts


def look_up(config: StackConfig) -> AccountFacts:
    """The facts the rules need, from EC2 (the stack's provider: its region and credentials)."""
    lookup_problems = []
    subnet = vpc = None
    try:
        subnet = _subnet(config.subnet_id)
    except Exception as error:  # the provider's error says why: not found, no permission...
        lookup_problems.append(Problem("subnetId", f"{config.subnet_id} cannot be read in {config.region}: {error}"))
    try:
        vpc = _vpc(config.vpc_id)
    except Exception as error:
        lookup_problems.append(Problem("vpcId", f"{config.vpc_id} cannot be read in {config.region}: {error}"))
    namespace = None
    if config.existing_namespace:
        try:
            namespace = _namespace(config.namespace)
        except Exception as error:
            lookup_problems.append(
                Problem(
                    "existingNamespace",
                    f"no private DNS namespace {config.namespace} can be read in {config.region} ({error}): "
                    "create it, or remove existingNamespace to let the stack create it",
                )
            )
    cache_subnets = []
    for subnet_id in config.cache.subnet_ids if config.cache else ():
        try:
            cache_subnets.append(_subnet(subnet_id))
        except Exception as error:
            lookup_problems.append(Problem("cacheSubnetIds", f"{subnet_id} cannot be read in {config.region}: {error}"))
    # The valkey-serverless engine has no instance type to look up.
    offered = (
        _offered_instance_types(config.instance_types, config.availability_zone)
        if config.instance_types
        else frozenset()
    )
    described = {instance_type: aws.ec2.get_instance_type(instance_type=instance_type) for instance_type in offered}
    return AccountFacts(
        subnet=subnet,
        vpc=vpc,
        offered_instance_types=offered,
        architectures={name: tuple(found.supported_architectures or ()) for name, found in sorted(described.items())},
        memory_gib={name: (found.memory_size or 0) / 1024 for name, found in sorted(described.items())},
        namespace=namespace,
        lookup_problems=tuple(lookup_problems),
        cache_subnets=tuple(cache_subnets),
    )


def _subnet(subnet_id: str) -> Subnet:
    found = aws.ec2.get_subnet(id=subnet_id)
    return Subnet(id=subnet_id, vpc_id=found.vpc_id, availability_zone=found.availability_zone)


def _vpc(vpc_id: str) -> Vpc:
    found = aws.ec2.get_vpc(id=vpc_id)
    return Vpc(id=vpc_id, dns_support=bool(found.enable_dns_support), dns_hostnames=bool(found.enable_dns_hostnames))


def _namespace(name: str) -> Namespace:
    found = aws.servicediscovery.get_dns_namespace(name=name, type="DNS_PRIVATE")
    return Namespace(id=found.id, hosted_zone=found.hosted_zone)


def _offered_instance_types(instance_types: Sequence[str], zone: str) -> frozenset[str]:
    offerings = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[
            {"name": "location", "values": [zone]},
            {"name": "instance-type", "values": list(instance_types)},
        ],
    )
    return frozenset(offerings.instance_types or ()) & set(instance_types)
