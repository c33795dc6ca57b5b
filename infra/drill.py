"""The interruption drill on a real stack: an AWS FIS experiment template that gives this stack's Spot host a real
interruption notice, its least-privilege role and its log group. Nothing starts it but an operator
(`python -m spot_redis.drill.aws`, README "The drill on a real stack")."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.component import Concern, resolved
from infra.config import StackConfig
from spot_redis.events import STACK_TAG

SPOT_INTERRUPTION_ACTION = "aws:ec2:send-spot-instance-interruptions"
SPOT_INSTANCE_TARGET = "aws:ec2:spot-instance"
ACTION_TARGET_KEY = "SpotInstances"  # the action's name for its target, in the FIS actions reference
TARGET_NAME = "stack-spot-host"
NOTICE_BEFORE_INTERRUPTION = "PT2M"  # what EC2 gives a real interruption (and the shortest FIS accepts)
LOG_SCHEMA_VERSION = 2
# COUNT(1), not ALL: the group holds one host, but while a drained host is still shutting down it runs beside its
# replacement, and both carry the tag; one drill must never interrupt two hosts. The command refuses to start
# while more than one tagged instance runs, so the one FIS picks is the group's host.
SELECTION_MODE = "COUNT(1)"


def experiment_target(stack: str) -> dict:
    """The stack's running Spot instance, found by its stack tag (the group propagates it at launch)."""
    return {
        "name": TARGET_NAME,
        "resource_type": SPOT_INSTANCE_TARGET,
        "resource_tags": [{"key": STACK_TAG, "value": stack}],
        "filters": [{"path": "State.Name", "values": ["running"]}],
        "selection_mode": SELECTION_MODE,
    }


def experiment_action() -> dict:
    return {
        "name": "interrupt",
        "action_id": SPOT_INTERRUPTION_ACTION,
        "description": "A Spot interruption notice, two minutes before EC2 interrupts the host",
        "parameters": [{"key": "durationBeforeInterruption", "value": NOTICE_BEFORE_INTERRUPTION}],
        "target": {"key": ACTION_TARGET_KEY, "value": TARGET_NAME},
    }


# No stop condition (FIS wants `none` said explicitly). The stack's one alarm (alerting.py) counts events the
# Lambdas failed on, which says nothing about Redis; and a notice, once sent, cannot be taken back: stopping the
# experiment after it would stop nothing.
STOP_CONDITIONS = [{"source": "none"}]


class InterruptionDrill(Concern):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("InterruptionDrill", name, config, opts)
        self._logs(name, account_id)
        self._role(name, account_id)
        self.template = aws.fis.ExperimentTemplate(
            f"{name}-experiment",
            description=f"spot-redis {config.stack}: a Spot interruption notice to the Redis host (the drill)",
            role_arn=self.role.arn,
            actions=[experiment_action()],
            targets=[experiment_target(config.stack)],
            stop_conditions=STOP_CONDITIONS,
            # A stack outside working hours has no host: the experiment fails, rather than succeeding on nothing.
            experiment_options={"account_targeting": "single-account", "empty_target_resolution_mode": "fail"},
            log_configuration={
                "log_schema_version": LOG_SCHEMA_VERSION,
                "cloudwatch_logs_configuration": {"log_group_arn": self.log_group.arn.apply(lambda arn: f"{arn}:*")},
            },
            tags=self.tags("drill"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.log_delivery]),
        )
        self.register_outputs({"experiment_template_id": self.template.id, "log_group": self.log_group.name})

    def _logs(self, name: str, account_id: pulumi.Input[str]) -> None:
        config = self.config
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/spot-redis/{config.stack}/drill",
            retention_in_days=config.log_retention_days,
            tags=self.tags("drill-logs"),
            opts=self.child,
        )
        # Account-scoped (CloudWatch Logs allows 10 a region): vended log delivery looks for its permission there.
        self.log_delivery = aws.cloudwatch.LogResourcePolicy(
            f"{name}-log-delivery",
            policy_name=self.physical_name("drill-log-delivery"),
            policy_document=resolved(
                iam_documents.log_delivery_policy,
                log_group_arn=self.log_group.arn,
                region=config.region,
                account_id=account_id,
            ),
            opts=self.child,
        )

    def _role(self, name: str, account_id: pulumi.Input[str]) -> None:
        config = self.config
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=resolved(iam_documents.fis_trust_policy, region=config.region, account_id=account_id),
            description=f"FIS: a Spot interruption notice to spot-redis {config.stack}'s host, and its experiment log",
            tags=self.tags("drill"),
            opts=self.child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=resolved(
                iam_documents.drill_policy, stack=config.stack, region=config.region, account_id=account_id
            ),
            opts=self.child,
        )
