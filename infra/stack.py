"""The whole stack: configuration first (a bad value stops everything), then the account checked against it (a subnet,
VPC or instance type that does not fit stops everything too), then one component per concern."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import preflight, serverless_stack, volume_size
from infra.alerting import Alerting
from infra.bundle import AnsibleBundle
from infra.compute import SpotHost
from infra.config import StackConfig, load_config, load_secrets
from infra.drill import InterruptionDrill
from infra.network import SecurityGroups
from infra.parameters import Parameters
from infra.platform import Platform
from infra.storage import DataVolume

REPO_ROOT = Path(__file__).resolve().parent.parent


def build(repo_root: Path = REPO_ROOT, now: datetime.datetime | None = None) -> dict[str, pulumi.Input]:
    """Declare the stack; returns its outputs (also exported) so that tests can resolve them."""
    config = load_config()
    facts = preflight.check(config)  # before any resource or output: a mismatch stops `pulumi preview`
    if config.serverless:  # spot-redis:engine valkey-serverless: a managed cache instead of the host
        return serverless_stack.build(config, repo_root, existing_namespace=facts.namespace)
    config = with_data_volume_size(config, facts.memory_gib)
    secrets = load_secrets()
    account_id = aws.get_caller_identity_output().account_id

    network = SecurityGroups("network", config)
    data = DataVolume("data", config)
    parameters = Parameters("parameters", config, secrets)
    bundle = AnsibleBundle("bundle", config, repo_root)
    platform = Platform(
        "platform",
        config,
        app_password_parameter=parameters.parameters["redis-app-password"],
        account_id=account_id,
        existing_namespace=facts.namespace,
    )
    host = SpotHost(
        "host",
        config,
        repo_root=repo_root,
        account_id=account_id,
        security_group_id=network.host.id,
        volume=data.volume,
        bundle_bucket=bundle.bucket,
        bundle_key=bundle.key,
        parameter_arns=parameters.arns,
        redis_service=platform.redis_service,
        namespace=platform.namespace,
        boot_prerequisites=[bundle.object, *parameters.parameters.values()],
        now=now or datetime.datetime.now(datetime.UTC),
    )
    alerting = Alerting(
        "alerting",
        config,
        repo_root=repo_root,
        account_id=account_id,
        asg_name=host.group.name,
        snapshot_policy_arn=data.snapshots.arn,
        slack_parameter=parameters.parameters["slack-webhook-url"],
        cluster_arn=platform.cluster.arn,
        task_family=platform.task_family,
        task_definition_arn=platform.task_definition.arn,
        pass_role_arns=[platform.execution_role.arn],
        subnet_ids=[config.subnet_id],
        security_group_ids=[network.warmup.id],
    )
    drill = InterruptionDrill("drill", config, account_id=account_id)

    outputs = {
        "redisDnsName": config.redis_dns_name,
        "asgName": host.group.name,
        "dataVolumeId": data.volume.id,
        "parameterNames": parameters.names,
        "bundleBucket": bundle.bucket.id,
        "clusterName": platform.cluster.name,
        "ecrRepositoryUrl": platform.repository.repository_url,
        "failedEventsQueueUrl": alerting.failed_events.url,
        "drillExperimentTemplateId": drill.template.id,
    }
    for name, value in outputs.items():
        pulumi.export(name, value)
    return outputs


def with_data_volume_size(config: StackConfig, memory_gib: Mapping[str, float]) -> StackConfig:
    """The configuration with its data volume's size: dataVolumeSizeGib, else what the largest type's Redis and the
    monitoring history need (infra/volume_size.py). A configured size below that need is warned about, not refused."""
    need = volume_size.need(max(memory_gib.values()))
    if config.data_volume_size_gib is None:
        pulumi.log.info(f"data volume: {need.describe()}")
        return dataclasses.replace(config, data_volume_size_gib=need.size_gib)
    if config.data_volume_size_gib < need.size_gib:
        pulumi.log.warn(
            f"spot-redis:dataVolumeSizeGib: {config.data_volume_size_gib} GiB is less than the {need.size_gib} GiB "
            f"the data may need ({need.describe()}): a full volume stops Redis's writes"
        )
    return config
