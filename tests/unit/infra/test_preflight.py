"""The checks against the account before anything is created: the rules on plain facts, then the program under mocks
whose look-ups answer with an account that does not match the configuration."""

from __future__ import annotations

import dataclasses

import pytest

from infra.config import parse_config
from infra.preflight import AccountFacts, PreflightError, Problem, Subnet, Vpc, problems
from tests.unit.pulumi_harness import INSTANCE_ARCHITECTURES, Account, Run, example_config, run_program

VPC = "vpc-0a1b2c3d4e5f60718"
SUBNET = "subnet-0a1b2c3d4e5f60718"
ZONE = "ap-northeast-1a"
TYPES = ("t4g.small", "t4g.medium", "m6g.medium", "m7g.medium")


@pytest.fixture(scope="module")
def config():
    values = {key.split(":", 1)[1]: value for key, value in example_config().items() if key.startswith("spot-redis:")}
    return parse_config(values, stack="staging", region="ap-northeast-1")


def facts(**changes) -> AccountFacts:
    """An account that matches the example configuration, but for `changes`."""
    matching = AccountFacts(
        subnet=Subnet(id=SUBNET, vpc_id=VPC, availability_zone=ZONE),
        vpc=Vpc(id=VPC, dns_support=True, dns_hostnames=True),
        offered_instance_types=frozenset(TYPES),
        architectures={instance_type: ("arm64",) for instance_type in TYPES},
    )
    return dataclasses.replace(matching, **changes)


def messages(config, **changes) -> list[str]:
    return [str(problem) for problem in problems(config, facts(**changes))]


# --- the rules, on plain facts ------------------------------------------------------------------------------------


def test_an_account_that_matches_has_no_problem(config):
    assert config.instance_types == TYPES, "the example configuration these facts match"
    assert messages(config) == []


def test_a_subnet_in_another_vpc(config):
    (message,) = messages(config, subnet=Subnet(id=SUBNET, vpc_id="vpc-0fffffffffffffff0", availability_zone=ZONE))
    assert message == f"spot-redis:subnetId: {SUBNET} is in vpc-0fffffffffffffff0, not in {VPC} (vpcId)"


def test_a_subnet_in_another_zone(config):
    (message,) = messages(config, subnet=Subnet(id=SUBNET, vpc_id=VPC, availability_zone="ap-northeast-1c"))
    assert message.startswith(f"spot-redis:availabilityZone: {ZONE}, but the subnet {SUBNET} is in ap-northeast-1c")


def test_a_subnet_in_another_vpc_and_zone_is_two_problems(config):
    found = messages(config, subnet=Subnet(id=SUBNET, vpc_id="vpc-0fffffffffffffff0", availability_zone="x-1b"))
    assert [message.split(":")[1] for message in found] == ["subnetId", "availabilityZone"]


@pytest.mark.parametrize(
    ("support", "hostnames", "off"),
    [(True, False, "enableDnsHostnames"), (False, True, "enableDnsSupport"), (False, False, "enableDnsSupport and")],
)
def test_a_vpc_without_dns(config, support, hostnames, off):
    (message,) = messages(config, vpc=Vpc(id=VPC, dns_support=support, dns_hostnames=hostnames))
    assert message.startswith(f"spot-redis:vpcId: {VPC} has {off}")
    assert "Cloud Map" in message


def test_a_type_not_offered_in_the_zone(config):
    offered = frozenset(TYPES) - {"m7g.medium"}
    assert messages(config, offered_instance_types=offered) == [
        f"spot-redis:instanceTypes: m7g.medium is not offered in {ZONE}"
    ]


def test_a_type_of_another_architecture(config):
    architectures = {**facts().architectures, "m6g.medium": ("x86_64",)}
    assert messages(config, architectures=architectures) == [
        "spot-redis:instanceTypes: m6g.medium runs x86_64, not arm64 (architecture)"
    ]


def test_a_type_that_supports_several_architectures_fits_if_one_is_ours(config):
    architectures = {**facts().architectures, "t4g.small": ("x86_64", "arm64")}
    assert messages(config, architectures=architectures) == []


def test_a_failed_look_up_is_a_problem_and_the_rest_is_still_checked(config):
    found = messages(
        config,
        subnet=None,
        lookup_problems=(Problem("subnetId", "cannot be read"),),
        offered_instance_types=frozenset(),
    )
    assert found[0] == "spot-redis:subnetId: cannot be read"
    assert len(found) == 1 + len(TYPES)


def test_every_problem_is_listed_one_a_line_under_one_error():
    error = PreflightError([Problem("subnetId", "first"), Problem("instanceTypes", "second")])
    assert str(error).splitlines()[1:] == ["  spot-redis:subnetId: first", "  spot-redis:instanceTypes: second"]
    assert "nothing was created" in str(error).splitlines()[0]


# --- the program, under mocks ---------------------------------------------------------------------------------------


def stopped(account: Account, **run_options) -> list[str]:
    """The problems the program stopped on, having declared nothing and asked nothing beyond the preflight."""
    run = Run()
    with pytest.raises(PreflightError) as error:
        run_program(account=account, run=run, **run_options)
    assert run.resources == []
    assert all(token.startswith("aws:ec2/") for token, _ in run.invokes), "nothing after the preflight ran"
    return [str(problem) for problem in error.value.problems]


def test_the_example_stack_looks_up_its_subnet_vpc_and_types_in_its_zone():
    run = run_program()
    asked = {token.split(":")[-1]: args for token, args in run.invokes}
    assert asked["getSubnet"]["id"] == SUBNET
    assert asked["getVpc"]["id"] == VPC
    offerings = asked["getInstanceTypeOfferings"]
    assert offerings["locationType"] == "availability-zone"
    filters = {item["name"]: item["values"] for item in offerings["filters"]}
    assert filters == {"location": [ZONE], "instance-type": list(TYPES)}
    types_asked = sorted(args["instanceType"] for token, args in run.invokes if token.endswith("getInstanceType"))
    assert types_asked == sorted(TYPES)


def test_the_look_ups_come_before_any_resource():
    run = run_program()
    preflight = {"getSubnet", "getVpc", "getInstanceTypeOfferings", "getInstanceType"}
    tokens = [token.split(":")[-1] for token, _ in run.invokes]
    assert set(tokens[: len(TYPES) + 3]) == preflight, "the preflight's look-ups are the program's first"


def test_a_subnet_in_another_vpc_stops_the_program():
    assert stopped(Account(subnet_vpc_id="vpc-0fffffffffffffff0")) == [
        f"spot-redis:subnetId: {SUBNET} is in vpc-0fffffffffffffff0, not in {VPC} (vpcId)"
    ]


def test_a_subnet_in_another_zone_stops_the_program():
    (problem,) = stopped(Account(subnet_zone="ap-northeast-1c"))
    assert problem.startswith("spot-redis:availabilityZone: ap-northeast-1a, but the subnet")


def test_a_vpc_without_dns_host_names_stops_the_program():
    (problem,) = stopped(Account(dns_hostnames=False))
    assert problem.startswith(f"spot-redis:vpcId: {VPC} has enableDnsHostnames off")


def test_an_instance_type_of_the_wrong_architecture_stops_the_program():
    account = Account(architectures={**INSTANCE_ARCHITECTURES, "m7g.medium": ("x86_64",)})
    assert stopped(account) == ["spot-redis:instanceTypes: m7g.medium runs x86_64, not arm64 (architecture)"]


def test_an_instance_type_not_offered_in_the_zone_stops_the_program():
    assert stopped(Account(not_offered=frozenset({"t4g.medium"}))) == [
        f"spot-redis:instanceTypes: t4g.medium is not offered in {ZONE}"
    ]


def test_a_subnet_that_does_not_exist_stops_the_program_naming_its_key():
    (problem,) = stopped(Account(missing_ids=frozenset({SUBNET})))
    assert problem.startswith(f"spot-redis:subnetId: {SUBNET} cannot be read in ap-northeast-1: ")
    assert "no matching EC2 Subnet found" in problem


def test_every_problem_is_told_at_once():
    account = Account(subnet_zone="ap-northeast-1c", dns_support=False, not_offered=frozenset({"m6g.medium"}))
    assert [problem.split(":")[1] for problem in stopped(account)] == ["availabilityZone", "vpcId", "instanceTypes"]


def test_an_x86_stack_is_checked_against_its_own_types():
    x86 = {"spot-redis:architecture": "x86_64", "spot-redis:instanceTypes": ["t3.small", "t3a.small"]}
    assert run_program(x86).of_type("aws:autoscaling/group:Group")
    account = Account(not_offered=frozenset({"t3a.small"}))
    assert stopped(account, overrides=x86) == [f"spot-redis:instanceTypes: t3a.small is not offered in {ZONE}"]
