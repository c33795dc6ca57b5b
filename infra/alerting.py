"""The path that does not depend on the host: EventBridge rules → Lambdas → Slack (SNS e-mail as the fallback),
and the warm-up batch started after data loss. The Lambdas' code is whatever `lambdas/<name>/` holds."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import event_patterns, iam_documents
from infra.component import Concern, resolved
from infra.config import StackConfig

LAMBDA_RUNTIME = "python3.13"
SHARED_CODE = "common"
SKIPPED = {"__pycache__", ".pytest_cache"}
FAILED_EVENT_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest
FAILED_EVENTS_ALARM_PERIOD_SECONDS = 300


# The event contract (spot_redis.events), in every function's zip at these paths so that `from spot_redis.events
# import ...` works in Lambda. Only these two files: the host agent (spot_redis/agent) stays out.
CONTRACT_FILES = ("spot_redis/__init__.py", "spot_redis/events.py")

# Packages copied into the functions' zips from the deploying virtualenv, at the versions requirements.txt pins
# (`check_pins`), so that Lambda runs the very code the unit tests ran. Every function gets Powertools for AWS Lambda
# and the two packages it imports, rather than AWS's managed layer: a layer's version number is a counter per runtime
# and architecture that names no Powertools release, and the published mapping (SSM parameters per release) has had
# gaps. warmup also reads WORK_HOURS's time zone with zoneinfo, which falls back to the tzdata package when the runtime
# has no system time zone database: with it bundled, the warm-up never depends on what the Lambda image holds.
POWERTOOLS_PACKAGES = ("aws_lambda_powertools", "jmespath", "typing_extensions")
VENDORED_PACKAGES = {"warmup": ("tzdata",)}


def lambda_files(repo_root: Path, function: str) -> dict[str, Path]:
    """A function's package: its own folder at the root of the zip, lambdas/common/ as the package `common`, the
    event contract (:data:`CONTRACT_FILES`) as the package `spot_redis`, and :data:`POWERTOOLS_PACKAGES` and its
    :data:`VENDORED_PACKAGES` from this virtualenv."""
    lambdas = repo_root / "lambdas"
    sources = [(lambdas / function, ""), (lambdas / SHARED_CODE, f"{SHARED_CODE}/")]
    files = {}
    vendored = (*POWERTOOLS_PACKAGES, *VENDORED_PACKAGES.get(function, ()))
    check_pins(vendored, (repo_root / "requirements.txt").read_text())
    for name in vendored:
        location = vendored_package(name)
        if location.is_dir():
            sources.append((location, f"{name}/"))
        else:
            files[location.name] = location  # a package of one module, e.g. typing_extensions.py
    for source, prefix in sources:
        if not source.is_dir():
            continue
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if path.is_file() and not SKIPPED.intersection(relative.parts) and path.suffix != ".pyc":
                files[prefix + relative.as_posix()] = path
    for relative in CONTRACT_FILES:
        path = repo_root / relative
        if not path.is_file():
            raise RuntimeError(f"{relative} is missing: every Lambda needs the event contract")
        files[relative] = path
    return files


def vendored_package(name: str) -> Path:
    """The folder of an installed package (the file of a one-module package), for bundling; a clear error when
    requirements.txt was not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not (spec.submodule_search_locations or spec.has_location):
        raise RuntimeError(f"the package {name!r} is not installed: `pip install -r requirements.txt` first")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin)


def requirement_pins(requirements_text: str) -> dict[str, str]:
    """`name==version` lines of requirements.txt: normalised distribution name -> version (extras dropped)."""
    pins = re.findall(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s#;]+)", requirements_text, re.M)
    return {_normalised(name): version for name, version in pins}


def check_pins(packages: tuple[str, ...], requirements_text: str) -> None:
    """Refuse to bundle a package whose installed version is not the one requirements.txt pins (the tests ran that)."""
    pins = requirement_pins(requirements_text)
    distributions = importlib.metadata.packages_distributions()
    for package in packages:
        for distribution in distributions.get(package, ()):
            pinned, installed = pins.get(_normalised(distribution)), importlib.metadata.version(distribution)
            if pinned and installed != pinned:
                raise RuntimeError(
                    f"{distribution} {installed} is installed but requirements.txt pins {pinned}: the Lambdas would "
                    "not run the code the tests ran (`pip install -r requirements.txt` first)"
                )


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def work_hours_text(config: StackConfig) -> str:
    """WORK_HOURS for the warm-up function, e.g. `Mon-Fri 09:00-19:00 Asia/Tokyo`; empty when always on."""
    hours = config.working_hours
    if hours is None:
        return ""
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    days = ",".join(names[day - 1] for day in hours.days)
    return f"{days} {hours.start:%H:%M}-{hours.end:%H:%M} {hours.time_zone}"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    pattern: pulumi.Input[str]


class Alerting(Concern):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        repo_root: Path,
        account_id: pulumi.Input[str],
        asg_name: pulumi.Input[str] | None,
        snapshot_policy_arn: pulumi.Input[str] | None,
        slack_parameter: aws.ssm.Parameter,
        cluster_arn: pulumi.Input[str],
        task_family: str,
        task_definition_arn: pulumi.Input[str],
        pass_role_arns: list[pulumi.Input[str]],
        subnet_ids: list[str],
        security_group_ids: list[pulumi.Input[str]],
        cache_alarm_arns: list[pulumi.Input[str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """asg_name and snapshot_policy_arn: the Spot host's group and its data volume's DLM policy; None with the
        valkey-serverless engine, which has neither: the events that exist only for a host (Spot warnings, instance
        states, launch failures, EBS snapshots, DLM, the host's dataset) are then not routed, and cache_alarm_arns
        (the cache's usage-limit alarms) go to notify instead."""
        super().__init__("Alerting", name, config, opts)
        host = asg_name is not None
        cache_alarm_arns = list(cache_alarm_arns or [])
        self.repo_root = repo_root
        self.account_id = account_id
        self._idempotency_table(name)
        self._fallback_topic(name)
        self._failed_events_queue(name)
        self._failed_events_alarm(name)
        common_environment = {"STACK_NAME": config.stack, "IDEMPOTENCY_TABLE": self.table.name}

        self.notify = self._function(
            "notify",
            description="Tells the team on Slack what happened to the Spot Redis host (SNS e-mail if Slack fails)",
            timeout=60,
            environment={
                **common_environment,
                "SLACK_WEBHOOK_PARAM": slack_parameter.name,
                "FALLBACK_TOPIC_ARN": self.topic.arn,
                "ON_DEMAND_FALLBACK": "true" if config.on_demand_fallback else "false",
            },
            policy=lambda log_group_arn: resolved(
                iam_documents.notify_policy,
                log_group_arn=log_group_arn,
                table_arn=self.table.arn,
                slack_parameter_arn=slack_parameter.arn,
                topic_arn=self.topic.arn,
                failure_queue_arn=self.failed_events.arn,
                alarm_arn=self.failed_events_alarm.arn,
                region=config.region,
                account_id=account_id,
                **({"other_alarm_arns": pulumi.Output.all(*cache_alarm_arns)} if cache_alarm_arns else {}),
            ),
        )
        task_family_arn = pulumi.Output.from_input(account_id).apply(
            lambda account: f"arn:aws:ecs:{config.region}:{account}:task-definition/{task_family}"
        )
        self.warmup = self._function(
            "warmup",
            description="Starts the cache warm-up batch when the host came up without its data",
            timeout=30,
            environment={
                **common_environment,
                "CLUSTER_ARN": cluster_arn,
                "TASK_DEFINITION_ARN": task_definition_arn,
                "SUBNET_IDS": ",".join(subnet_ids),
                "SECURITY_GROUP_IDS": pulumi.Output.all(*security_group_ids).apply(",".join),
                "ASSIGN_PUBLIC_IP": "ENABLED" if config.warmup_public_ip else "DISABLED",
                "WORK_HOURS": work_hours_text(config),
            },
            policy=lambda log_group_arn: resolved(
                iam_documents.warmup_policy,
                log_group_arn=log_group_arn,
                table_arn=self.table.arn,
                cluster_arn=cluster_arn,
                task_definition_family_arn=task_family_arn,
                pass_role_arns=pass_role_arns,
                failure_queue_arn=self.failed_events.arn,
                region=config.region,
                account_id=account_id,
            ),
        )

        stack = config.stack
        host_rules = (
            [
                Rule(
                    "spot-warnings",
                    "Spot interruption warnings and rebalance recommendations",
                    json.dumps(event_patterns.spot_warnings()),
                ),
                Rule("instance-states", "Instance state changes", json.dumps(event_patterns.instance_state_changes())),
                Rule(
                    "launch-failures",
                    "The Auto Scaling group could not launch the host",
                    pulumi.Output.from_input(asg_name).apply(lambda n: json.dumps(event_patterns.launch_failures(n))),
                ),
                Rule("snapshot-failures", "EBS snapshot failures", json.dumps(event_patterns.snapshot_failures())),
                Rule(
                    "dlm-errors",
                    "The snapshot policy is in error",
                    pulumi.Output.from_input(snapshot_policy_arn).apply(
                        lambda arn: json.dumps(event_patterns.dlm_policy_errors(arn))
                    ),
                ),
            ]
            if host
            else []
        )
        cache_rules = (
            [
                Rule(
                    "cache-alarms",
                    "The serverless cache nears a usage limit (data storage or ECPUs per second)",
                    pulumi.Output.all(*cache_alarm_arns).apply(
                        lambda arns: json.dumps(event_patterns.alarms_raised(arns))
                    ),
                )
            ]
            if cache_alarm_arns
            else []
        )
        for rule in (
            *host_rules,
            Rule(
                "stack-events",
                "What the host, the warm-up and the fallback report: host ready (complete, crash or empty), drained, "
                "rebalance seen, bootstrap failed, warm-up requested, started or finished, on-demand, back to Spot",
                json.dumps(event_patterns.stack_events(stack)),
            ),
            Rule(
                "failed-events-alarm",
                "Events a Lambda failed on are waiting in the failed-events queue",
                self.failed_events_alarm.arn.apply(lambda arn: json.dumps(event_patterns.alarm_raised(arn))),
            ),
            *cache_rules,
        ):
            self._route(rule, self.notify)
        dataset_rules = (
            [
                Rule(
                    "dataset-events",
                    "The host came up with an empty dataset (data lost): start the warm-up",
                    json.dumps(event_patterns.dataset_events(stack)),
                )
            ]
            if host
            else []
        )
        for rule in (
            *dataset_rules,
            Rule(
                "warmup-requests",
                "An operator asked for the warm-up (spot-redis warmup): start it",
                json.dumps(event_patterns.warmup_requests(stack)),
            ),
            Rule(
                "warmup-stopped",
                "The warm-up task stopped",
                pulumi.Output.from_input(cluster_arn).apply(
                    lambda arn: json.dumps(event_patterns.warmup_task_stopped(arn, task_family))
                ),
            ),
        ):
            self._route(rule, self.warmup)
        self.capacity = (
            self._on_demand_fallback(common_environment, asg_name) if host and config.on_demand_fallback else None
        )
        self.register_outputs(
            {
                "notify_function": self.notify.name,
                "warmup_function": self.warmup.name,
                "capacity_function": self.capacity.name if self.capacity else None,
                "topic_arn": self.topic.arn,
                "failed_events_queue": self.failed_events.url,
                "failed_events_alarm": self.failed_events_alarm.name,
            }
        )

    def _on_demand_fallback(
        self, common_environment: dict[str, pulumi.Input[str]], asg_name: pulumi.Input[str]
    ) -> aws.lambda_.Function:
        """The capacity function and its two rules: no Spot capacity switches the group to on-demand, the group at
        zero goes back to Spot."""
        config = self.config
        capacity = self._function(
            "capacity",
            description="Switches the Redis host's group to on-demand when Spot has no capacity, and back at zero",
            timeout=30,
            environment={**common_environment, "ASG_NAME": asg_name},
            policy=lambda log_group_arn: resolved(
                iam_documents.capacity_policy,
                log_group_arn=log_group_arn,
                table_arn=self.table.arn,
                failure_queue_arn=self.failed_events.arn,
                stack=config.stack,
                asg_name=asg_name,
                region=config.region,
                account_id=self.account_id,
            ),
        )
        group = pulumi.Output.from_input(asg_name)
        for rule in (
            Rule(
                "no-spot-capacity",
                "The group could not launch the host: on-demand, if Spot lacked capacity",
                group.apply(lambda name: json.dumps(event_patterns.launch_failures(name))),
            ),
            Rule(
                "group-at-zero",
                "The group terminated an instance: the capacity function goes back to Spot if the group is at zero",
                group.apply(lambda name: json.dumps(event_patterns.instances_terminated(name))),
            ),
        ):
            self._route(rule, capacity)
        return capacity

    def _idempotency_table(self, name: str) -> None:
        # aws-lambda-powertools Idempotency's default key schema: partition key `id`, TTL attribute `expiration`.
        self.table = aws.dynamodb.Table(
            f"{name}-idempotency",
            billing_mode="PAY_PER_REQUEST",
            hash_key="id",
            attributes=[{"name": "id", "type": "S"}],
            ttl={"attribute_name": "expiration", "enabled": True},
            server_side_encryption={"enabled": True},
            tags=self.tags("idempotency"),
            opts=self.child,
        )

    def _fallback_topic(self, name: str) -> None:
        self.topic = aws.sns.Topic(
            f"{name}-fallback",
            display_name=f"spot-redis {self.config.stack}",
            kms_master_key_id="alias/aws/sns",
            tags=self.tags("fallback"),
            opts=self.child,
        )
        if self.config.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-fallback-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=self.config.alert_email,
                opts=self.child,
            )

    def _failed_events_queue(self, name: str) -> None:
        # Lambda invokes asynchronously: after its own retries it drops an event the function failed on, unless
        # the event has somewhere to go. It goes here, for two weeks, and the notify function never loses it silently.
        self.failed_events = aws.sqs.Queue(
            f"{name}-failed-events",
            name=self.physical_name("failed-events"),
            message_retention_seconds=FAILED_EVENT_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=self.tags("failed-events"),
            opts=self.child,
        )

    def _failed_events_alarm(self, name: str) -> None:
        # Nobody reads a queue by habit. The alarm needs no action: CloudWatch sends every state change to
        # EventBridge, and the failed-events-alarm rule hands it to notify (whose own failures land in the queue
        # without raising the alarm again while it is in ALARM, so this cannot loop).
        self.failed_events_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-failed-events-waiting",
            name=self.physical_name("failed-events-waiting"),
            alarm_description="Events a spot-redis Lambda could not handle are waiting in the failed-events queue",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": self.failed_events.name},
            statistic="Maximum",
            period=FAILED_EVENTS_ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            tags=self.tags("failed-events-waiting"),
            opts=self.child,
        )

    def _function(
        self,
        function: str,
        *,
        description: str,
        timeout: int,
        environment: dict[str, pulumi.Input[str]],
        policy: Callable[[pulumi.Output[str]], pulumi.Output[str]],
    ) -> aws.lambda_.Function:
        config = self.config
        function_name = self.physical_name(function)
        log_group = aws.cloudwatch.LogGroup(
            f"{function}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=config.log_retention_days,
            tags=self.tags(f"{function}-logs"),
            opts=self.child,
        )
        role = aws.iam.Role(
            f"{function}-role",
            assume_role_policy=iam_documents.assume_role_policy("lambda.amazonaws.com"),
            description=f"The {function} Lambda of spot-redis {config.stack}",
            tags=self.tags(function),
            opts=self.child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{function}-policy", role=role.id, policy=policy(log_group.arn), opts=self.child
        )
        files = lambda_files(self.repo_root, function)
        if "app.py" not in files:
            pulumi.log.warn(f"lambdas/{function}/app.py is missing: the {function} function will fail until it exists")
        lambda_function = aws.lambda_.Function(
            f"{function}-function",
            name=function_name,
            description=description,
            runtime=LAMBDA_RUNTIME,
            architectures=["arm64"],
            handler="app.handler",
            code=pulumi.AssetArchive({path: pulumi.FileAsset(str(file)) for path, file in files.items()}),
            role=role.arn,
            timeout=timeout,
            memory_size=256,
            environment={"variables": environment},
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            tags=self.tags(function),
            # The role's permissions must exist before the function first runs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy, log_group]),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{function}-async",
            function_name=lambda_function.name,
            maximum_retry_attempts=2,
            maximum_event_age_in_seconds=3600,
            destination_config={"on_failure": {"destination": self.failed_events.arn}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        return lambda_function

    def _route(self, rule: Rule, function: aws.lambda_.Function) -> None:
        event_rule = aws.cloudwatch.EventRule(
            rule.name,
            name=self.physical_name(rule.name),
            description=rule.description,
            event_pattern=rule.pattern,
            tags=self.tags(rule.name),
            opts=self.child,
        )
        aws.cloudwatch.EventTarget(
            f"{rule.name}-target",
            rule=event_rule.name,
            arn=function.arn,
            retry_policy={"maximum_event_age_in_seconds": 3600, "maximum_retry_attempts": 10},
            opts=self.child,
        )
        aws.lambda_.Permission(
            f"{rule.name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=event_rule.arn,
            opts=self.child,
        )
