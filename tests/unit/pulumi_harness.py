"""Runs the Pulumi program under `pulumi.runtime.set_mocks` (preview=False) and records every resource it declares.

The mocks answer as AWS would where the program reads a computed value back (ARNs, ids, names, the hosted zone),
so that every `apply` callback runs; each resource is recorded with its resolved inputs. The look-ups the program
makes before declaring anything (infra/preflight.py) are answered from an `Account`: by default one that holds what
Pulumi.example.yaml names, a test changes what it needs.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from spot_redis.cost.prices import FilePrices

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "Pulumi.example.yaml"
STACK = "example"
ACCOUNT = "123456789012"
# When `pulumi up` runs, for the ASG's initial desired capacity: a Sunday, and a Monday 10:00 in Tokyo.
OUTSIDE_WORKING_HOURS = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)
INSIDE_WORKING_HOURS = datetime.datetime(2026, 11, 23, 1, 0, tzinfo=datetime.UTC)
TEST_SECRETS = {
    "spot-redis:slackWebhookUrl": "https://hooks.slack.com/services/T000TEST/B000TEST/secretslacktoken",
    "spot-redis:heartbeatUrl": "https://hc-ping.com/0f0e0d0c-secret-heartbeat",
}


# What EC2 says of the instance types the tests configure (DescribeInstanceTypes' SupportedArchitectures).
INSTANCE_ARCHITECTURES = {
    **dict.fromkeys(("t4g.small", "t4g.medium", "m6g.medium", "m7g.medium", "c7g.medium", "c7g.large"), ("arm64",)),
    **dict.fromkeys(("t3.small", "t3a.small", "t3.medium", "t3a.medium", "m6i.large"), ("x86_64",)),
}

SHARED_NAMESPACE_ZONE = "Z0SHAREDZONE123"  # the hosted zone of a namespace that exists already (existingNamespace)
# Memory (GiB) of each, as the cost command's price file lists it with the vCPUs.
INSTANCE_MEMORY_GIB = {name: spec[1] for name, spec in FilePrices().doc["instances"]["types"].items()}


@dataclass(frozen=True)
class Account:
    """The AWS account the mocks stand for, as the preflight's look-ups see it. By default it matches the stack's
    configuration: the subnet is in the configured VPC and zone, the VPC resolves names, every known type is offered."""

    subnet_vpc_id: str | None = None  # None: the configured vpcId
    subnet_zone: str | None = None  # None: the configured availabilityZone
    dns_support: bool = True
    dns_hostnames: bool = True
    missing_ids: frozenset[str] = frozenset()  # subnets and VPCs that do not exist
    not_offered: frozenset[str] = frozenset()  # instance types not offered in the zone asked about
    architectures: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(INSTANCE_ARCHITECTURES))
    subnet_zones: Mapping[str, str] = field(default_factory=dict)  # a subnet's zone, where it is not subnet_zone


@dataclass
class Resource:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]

    @property
    def tags(self) -> dict[str, str]:
        return self.inputs.get("tags") or {}


@dataclass
class Run:
    resources: list[Resource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    depends_on: dict[str, list[str]] = field(default_factory=dict)  # explicit dependencies, by resource name
    invokes: list[tuple[str, dict]] = field(default_factory=list)  # (token, arguments) of every look-up, in order
    ignore_changes: dict[str, list[str]] = field(default_factory=dict)  # by resource name, where set

    def record_options(self, args: pulumi.ResourceTransformationArgs) -> None:
        """A stack transformation that changes nothing: it records each resource's explicit dependencies."""
        self.depends_on[args.name] = [getattr(resource, "_name", "?") for resource in args.opts.depends_on or []]
        if args.opts.ignore_changes:
            self.ignore_changes[args.name] = list(args.opts.ignore_changes)

    def of_type(self, type_token: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> Resource:
        matches = [r for r in self.of_type(type_token) if name is None or r.name == name]
        assert len(matches) == 1, f"expected one {type_token} {name or ''}, found {[r.name for r in matches]}"
        return matches[0]

    def named(self, name: str) -> Resource:
        matches = [resource for resource in self.resources if resource.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]

    def launch_template_of_each_type(self) -> dict[str, Resource]:
        """Instance type -> the launch template the Auto Scaling group launches it from (its override's, or else the
        group's)."""
        templates = {
            template.outputs["id"]: template for template in self.of_type("aws:ec2/launchTemplate:LaunchTemplate")
        }
        policy = self.one("aws:autoscaling/group:Group").inputs["mixedInstancesPolicy"]["launchTemplate"]
        default = policy["launchTemplateSpecification"]["launchTemplateId"]

        def template_id(override: dict) -> str:
            return override.get("launchTemplateSpecification", {}).get("launchTemplateId", default)

        return {override["instanceType"]: templates[template_id(override)] for override in policy["overrides"]}

    def custom(self) -> Iterator[Resource]:
        """The cloud resources, without the program's own components."""
        return (resource for resource in self.resources if not resource.type.startswith("spot-redis:"))


def example_config() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())["config"]


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, run: Run, config: dict[str, Any], account: Account):
        self.run = run
        self.config = config
        self.region = config["aws:region"]
        self.account = account

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, computed = _computed(args.typ, args.name, args.inputs, self.region)
        outputs = {**args.inputs, **computed}
        inputs = _unwrap_secrets(dict(args.inputs))
        recorded_outputs = {**_unwrap_secrets(outputs), "id": resource_id}
        self.run.resources.append(Resource(args.typ, args.name, inputs, recorded_outputs))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict | tuple[dict, list]:
        self.run.invokes.append((args.token, dict(args.args)))
        answers = {
            "aws:index/getCallerIdentity:getCallerIdentity": self._caller_identity,
            "aws:ec2/getSubnet:getSubnet": self._subnet,
            "aws:ec2/getVpc:getVpc": self._vpc,
            "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": self._instance_type_offerings,
            "aws:ec2/getInstanceType:getInstanceType": self._instance_type,
            "aws:servicediscovery/getDnsNamespace:getDnsNamespace": self._dns_namespace,
        }
        if args.token not in answers:
            raise AssertionError(f"unexpected invoke {args.token}: the program should need no other lookup")
        return answers[args.token](args.args)

    def _caller_identity(self, _: dict) -> dict:
        return {
            "accountId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
            "userId": "AIDTEST",
            "id": ACCOUNT,
        }

    def _subnet(self, args: dict) -> dict | tuple[dict, list]:
        if args["id"] in self.account.missing_ids:
            return _not_found("Subnet")
        return {
            "id": args["id"],
            "vpcId": self.account.subnet_vpc_id or self.config["spot-redis:vpcId"],
            "availabilityZone": self.account.subnet_zones.get(args["id"])
            or self.account.subnet_zone
            or self.config["spot-redis:availabilityZone"],
        }

    def _vpc(self, args: dict) -> dict | tuple[dict, list]:
        if args["id"] in self.account.missing_ids:
            return _not_found("VPC")
        return {
            "id": args["id"],
            "enableDnsSupport": self.account.dns_support,
            "enableDnsHostnames": self.account.dns_hostnames,
        }

    def _instance_type_offerings(self, args: dict) -> dict:
        filters = {item["name"]: item["values"] for item in args.get("filters") or []}
        (zone,) = filters["location"]
        offered = [
            instance_type
            for instance_type in filters["instance-type"]
            if instance_type in self.account.architectures and instance_type not in self.account.not_offered
        ]
        return {
            "id": self.region,
            "instanceTypes": offered,
            "locations": [zone] * len(offered),
            "locationTypes": [args.get("locationType")] * len(offered),
        }

    def _dns_namespace(self, args: dict) -> dict | tuple[dict, list]:
        return _dns_namespace_answer(self.account, args)

    def _instance_type(self, args: dict) -> dict:
        instance_type = args["instanceType"]
        return {
            "id": instance_type,
            "supportedArchitectures": list(self.account.architectures[instance_type]),
            "memorySize": INSTANCE_MEMORY_GIB[instance_type] * 1024,
        }


def _dns_namespace_answer(account: Account, args: dict) -> dict | tuple[dict, list]:
    if args["name"] in account.missing_ids or args["type"] != "DNS_PRIVATE":
        return _not_found("namespace")
    return {
        "id": "ns-shared0123456789",
        "arn": f"arn:aws:servicediscovery:ap-northeast-1:{ACCOUNT}:namespace/ns-shared0123456789",
        "hostedZone": SHARED_NAMESPACE_ZONE,
        "name": args["name"],
        "type": args["type"],
        "description": "",
        "tags": {},
    }


def _not_found(kind: str) -> tuple[dict, list]:
    """A look-up that fails as the provider's does: the program gets an exception it can catch."""
    return {}, [("id", f"no matching EC2 {kind} found")]


# How the Pulumi SDK marks a secret value on the wire.
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a marker, not a secret


def _unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIGNATURE in value:
            return _unwrap_secrets(value["value"])
        return {key: _unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(item) for item in value]
    return value


def _computed(type_token: str, name: str, inputs: dict, region: str) -> tuple[str, dict]:
    """What AWS computes for a resource: its id, ARN and the attributes the program reads back."""
    physical = inputs.get("name") or f"{name}-generated"
    service = type_token.split(":")[1].split("/")[0]
    arn_prefix = f"arn:aws:{service}:{region}:{ACCOUNT}"
    special = {
        "aws:ebs/volume:Volume": (
            "vol-0123456789abcdef0",
            {"arn": f"arn:aws:ec2:{region}:{ACCOUNT}:volume/vol-0123456789abcdef0"},
        ),
        "aws:iam/role:Role": (physical, {"arn": f"arn:aws:iam::{ACCOUNT}:role/{physical}", "name": physical}),
        "aws:iam/instanceProfile:InstanceProfile": (
            physical,
            {"arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{physical}", "name": physical},
        ),
        "aws:s3/bucket:Bucket": (
            "spot-redis-example-bucket0001",
            {"arn": "arn:aws:s3:::spot-redis-example-bucket0001", "bucket": "spot-redis-example-bucket0001"},
        ),
        "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace": (
            "ns-0123456789abcdef",
            {"arn": f"{arn_prefix}:namespace/ns-0123456789abcdef", "hostedZone": "Z0123456789ABCDEFGHIJ"},
        ),
        "aws:servicediscovery/service:Service": (
            "srv-0123456789abcdef",
            {"arn": f"{arn_prefix}:service/srv-0123456789abcdef"},
        ),
        "aws:ecs/cluster:Cluster": (physical, {"arn": f"{arn_prefix}:cluster/{physical}", "name": physical}),
        "aws:ecs/taskDefinition:TaskDefinition": (
            inputs.get("family", name),
            {"arn": f"{arn_prefix}:task-definition/{inputs.get('family')}:1", "revision": 1},
        ),
        "aws:ecr/repository:Repository": (
            physical,
            {
                "arn": f"{arn_prefix}:repository/{physical}",
                "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{physical}",
            },
        ),
        "aws:ssm/parameter:Parameter": (physical, {"arn": f"{arn_prefix}:parameter{physical}"}),
        "aws:cloudwatch/logGroup:LogGroup": (
            physical,
            {"arn": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{physical}"},
        ),
        "aws:cloudwatch/metricAlarm:MetricAlarm": (
            physical,
            {"arn": f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{physical}"},
        ),
        "aws:cloudwatch/eventRule:EventRule": (physical, {"arn": f"arn:aws:events:{region}:{ACCOUNT}:rule/{physical}"}),
        "aws:lambda/function:Function": (physical, {"arn": f"arn:aws:lambda:{region}:{ACCOUNT}:function:{physical}"}),
        "aws:dynamodb/table:Table": (physical, {"arn": f"{arn_prefix}:table/{physical}", "name": physical}),
        "aws:sns/topic:Topic": (physical, {"arn": f"{arn_prefix}:{physical}"}),
        "aws:sqs/queue:Queue": (physical, {"url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}"}),
        "aws:dlm/lifecyclePolicy:LifecyclePolicy": (
            "policy-0123456789abcdef0",
            {"arn": f"{arn_prefix}:policy/policy-0123456789abcdef0"},
        ),
        "aws:autoscaling/group:Group": (
            physical,
            {"arn": f"{arn_prefix}:autoScalingGroup:uuid:autoScalingGroupName/{physical}", "name": physical},
        ),
        "aws:ec2/launchTemplate:LaunchTemplate": (
            _launch_template_id(name),
            {"arn": f"{arn_prefix}:launch-template/{_launch_template_id(name)}"},
        ),
        "aws:ec2/securityGroup:SecurityGroup": (f"sg-{abs(hash(name)) % 16**17:017x}", {}),
        "random:index/randomPassword:RandomPassword": (name, {"result": f"generated-password-{name}"}),
        "aws:elasticache/serverlessCache:ServerlessCache": (
            physical,
            {
                "arn": f"arn:aws:elasticache:{region}:{ACCOUNT}:serverlesscache:{physical}",
                "endpoints": [{"address": f"{physical}-abc123.serverless.apne1.cache.amazonaws.com", "port": 6379}],
            },
        ),
    }
    resource_id, computed = special.get(type_token, (f"{name}-id", {}))
    computed.setdefault("arn", f"{arn_prefix}:{physical}")
    computed.setdefault("name", physical)
    return resource_id, computed


def _launch_template_id(name: str) -> str:
    """Each launch template its own id (the group's overrides tell them apart), the same in every run."""
    return f"lt-{hashlib.sha256(name.encode()).hexdigest()[:17]}"


def run_program(
    overrides: dict[str, Any] | None = None,
    removed: tuple[str, ...] = (),
    now: datetime.datetime = OUTSIDE_WORKING_HOURS,
    stack: str = STACK,
    account: Account | None = None,
    run: Run | None = None,
    **secrets: str,
) -> Run:
    """Run infra.stack.build() with the example config (plus overrides, minus removed keys) against `account` (by
    default one that matches the config); raise what it raises. Pass `run` to see what was recorded before a raise."""
    config = {**example_config(), **(overrides or {})}
    for key in removed:
        config.pop(key)
    all_secrets = {**TEST_SECRETS, **{f"spot-redis:{key}": value for key, value in secrets.items()}}
    run = run if run is not None else Run()
    pulumi.runtime.set_mocks(
        _Mocks(run, config, account or Account()), project="spot-redis", stack=stack, preview=False
    )
    pulumi.runtime.set_all_config(
        {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in {**config, **all_secrets}.items()
        },
        secret_keys=list(all_secrets),
    )
    from infra.stack import build

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        pulumi.runtime.register_stack_transformation(run.record_options)
        outputs = build(now=now)
        return pulumi.Output.from_input(outputs).apply(run.outputs.update)

    _event_loop().set_exception_handler(_quiet_abandoned_config_errors)
    started = time.perf_counter()
    program()
    run.seconds = time.perf_counter() - started
    return run


def _event_loop() -> asyncio.AbstractEventLoop:
    """The loop pulumi.runtime.test runs on: this thread's, made when there is none (as pulumi's sync_await does)."""
    try:
        return asyncio.get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop


def _quiet_abandoned_config_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A program stopped by a bad config value inside an apply leaves every resource that waited on it with an
    exception nobody retrieves; asyncio prints each one's traceback when it is collected (about 100,000 lines after
    the test that expects the error). Those alone are dropped, recognised by the ConfigError in their chain of
    causes; anything else goes to the default handler. (The handler stays on the loop: collection happens later.)"""
    abandoned = context.get("message") == "Future exception was never retrieved"
    if abandoned and _caused_by_config_error(context.get("exception")):
        return
    loop.default_exception_handler(context)


def _caused_by_config_error(error: BaseException | None) -> bool:
    from infra.config import ConfigError

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
