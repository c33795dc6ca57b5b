"""The stack with the valkey-serverless engine: the same name, passwords, warm-up batch and alerting as the Spot host's
stack, with an ElastiCache Serverless cache for Valkey where the host, its group, its data volume and snapshot policy,
its schedule, its Ansible bundle and its interruption drill were (infra/stack.py builds the spot-host engine)."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.alerting import Alerting
from infra.config import StackConfig, load_secrets
from infra.network import CacheSecurityGroups
from infra.parameters import Parameters
from infra.platform import Platform
from infra.preflight import Namespace
from infra.serverless import ValkeyServerless


def build(config: StackConfig, repo_root: Path, existing_namespace: Namespace | None = None) -> dict[str, pulumi.Input]:
    """Declare the valkey-serverless stack (its configuration checked, and the account against it); returns its
    outputs (also exported)."""
    secrets = load_secrets()
    account_id = aws.get_caller_identity_output().account_id

    network = CacheSecurityGroups("network", config)
    parameters = Parameters("parameters", config, secrets)
    passwords = {purpose: parameter.value for purpose, parameter in parameters.parameters.items()}
    cache = ValkeyServerless("cache", config, security_group_id=network.cache.id, passwords=passwords)
    platform = Platform(
        "platform",
        config,
        app_password_parameter=parameters.parameters["redis-app-password"],
        account_id=account_id,
        existing_namespace=existing_namespace,
        redis_cname=cache.endpoint,
    )
    alerting = Alerting(
        "alerting",
        config,
        repo_root=repo_root,
        account_id=account_id,
        asg_name=None,
        snapshot_policy_arn=None,
        slack_parameter=parameters.parameters["slack-webhook-url"],
        cluster_arn=platform.cluster.arn,
        task_family=platform.task_family,
        task_definition_arn=platform.task_definition.arn,
        pass_role_arns=[platform.execution_role.arn],
        subnet_ids=[config.subnet_id],
        security_group_ids=[network.warmup.id],
        cache_alarm_arns=[alarm.arn for alarm in cache.alarms],
    )

    outputs = {
        "engine": config.engine,
        "redisDnsName": config.redis_dns_name,
        "cacheName": cache.cache.name,
        "cacheEndpoint": cache.endpoint,
        "parameterNames": parameters.names,
        "clusterName": platform.cluster.name,
        "ecrRepositoryUrl": platform.repository.repository_url,
        "failedEventsQueueUrl": alerting.failed_events.url,
    }
    for name, value in outputs.items():
        pulumi.export(name, value)
    return outputs
