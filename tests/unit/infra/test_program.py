"""The Pulumi program, run under mocks with Pulumi.example.yaml: what it declares, resource by resource."""

from __future__ import annotations

import base64
import json

import pytest

from infra.bootstrap import decode_user_data
from infra.compute import is_burstable
from infra.config import ConfigError
from infra.preflight import PreflightError
from infra.schedule import snapshot_crons, working_hours
from tests.unit.pulumi_harness import (
    ACCOUNT,
    INSIDE_WORKING_HOURS,
    SHARED_NAMESPACE_ZONE,
    STACK,
    TEST_SECRETS,
    Account,
    Run,
    example_config,
    run_program,
)

STACK_TAG = {"spot-redis:stack": STACK}


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program()


def by_name(run: Run, type_token: str) -> dict[str, dict]:
    return {resource.name: resource.inputs for resource in run.of_type(type_token)}


def ingress_rules(run: Run) -> list[dict]:
    return [resource.inputs for resource in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]


def test_the_example_stack_declares_every_concern(run):
    components = {resource.type for resource in run.resources if resource.type.startswith("spot-redis:")}
    assert components == {
        f"spot-redis:stack:{kind}"
        for kind in (
            "SecurityGroups",
            "DataVolume",
            "Parameters",
            "AnsibleBundle",
            "Platform",
            "SpotHost",
            "Alerting",
            "InterruptionDrill",
        )
    }


def test_stack_outputs(run):
    outputs = run.outputs
    assert outputs["redisDnsName"] == "redis.staging.internal"
    assert outputs["asgName"] == "spot-redis-example-redis"
    assert outputs["dataVolumeId"] == "vol-0123456789abcdef0"
    assert outputs["parameterNames"]["redis-app-password"] == "/spot-redis/example/redis/app-password"
    assert outputs["bundleBucket"] == "spot-redis-example-bucket0001"
    assert outputs["clusterName"] == "spot-redis-example-batch"
    assert outputs["ecrRepositoryUrl"].endswith(".amazonaws.com/spot-redis-example-warmup")
    template = run.one("aws:fis/experimentTemplate:ExperimentTemplate")
    assert outputs["drillExperimentTemplateId"] == template.outputs["id"]


# --- security groups -------------------------------------------------------------------------------------------


def test_redis_port_admits_only_the_allowed_sources_and_the_warmup_task(run):
    redis = [rule for rule in ingress_rules(run) if rule["fromPort"] == 6379]
    sources = sorted(rule.get("cidrIpv4") or rule.get("referencedSecurityGroupId") for rule in redis)
    warmup_group = run.named("example-warmup").outputs["id"]
    assert sources == sorted(["10.20.0.0/16", "sg-0a1b2c3d4e5f60718", warmup_group])


def test_monitoring_ports_admit_the_host_itself_and_admin_networks_only(run):
    host_group = run.named("example-host").outputs["id"]
    for port in (9090, 9093, 9100, 9121):
        rules = [rule for rule in ingress_rules(run) if rule["fromPort"] == port]
        sources = sorted(rule.get("cidrIpv4") or rule.get("referencedSecurityGroupId") for rule in rules)
        assert sources == sorted(["10.99.0.0/24", host_group]), port


def test_every_ingress_rule_is_on_the_host_group_and_one_port(run):
    host_group = run.named("example-host").outputs["id"]
    for rule in ingress_rules(run):
        assert rule["securityGroupId"] == host_group
        assert rule["fromPort"] == rule["toPort"]
        assert rule["ipProtocol"] == "tcp"


def test_egress_is_as_narrow_as_the_hosts_needs(run):
    egress = run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    host_group = run.named("example-host").outputs["id"]
    warmup_group = run.named("example-warmup").outputs["id"]
    host = sorted(rule.inputs["fromPort"] for rule in egress if rule.inputs["securityGroupId"] == host_group)
    warmup = {
        rule.inputs["fromPort"]: rule.inputs.get("referencedSecurityGroupId") or rule.inputs.get("cidrIpv4")
        for rule in egress
        if rule.inputs["securityGroupId"] == warmup_group
    }
    assert host == [80, 443]
    assert warmup == {6379: host_group, 443: "0.0.0.0/0"}
    for group in run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.inputs.get("ingress") and not group.inputs.get("egress"), "rules are separate resources"


# --- the host ---------------------------------------------------------------------------------------------------


def host_template(run: Run) -> dict:
    """The group's launch template: every instance type launches from it, but the T types (see below)."""
    return run.named("host-template").inputs


def test_launch_template(run):
    template = host_template(run)
    assert template["imageId"] == "resolve:ssm:/aws/service/debian/release/12/latest/arm64"
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (root,) = template["blockDeviceMappings"]
    assert root["ebs"]["encrypted"] == "true"
    assert root["ebs"]["volumeType"] == "gp3"
    assert template["iamInstanceProfile"]["arn"].startswith(f"arn:aws:iam::{ACCOUNT}:instance-profile/")
    (interface,) = template["networkInterfaces"]
    assert interface["securityGroups"] == [run.named("example-host").outputs["id"]]
    assert interface["associatePublicIpAddress"] == "true"  # hostPublicIp's default: a public subnet without NAT
    assert "vpcSecurityGroupIds" not in template  # EC2 refuses both
    assert {spec["resourceType"] for spec in template["tagSpecifications"]} == {"instance", "volume"}
    assert all(spec["tags"]["spot-redis:stack"] == STACK for spec in template["tagSpecifications"])


def test_a_host_without_a_public_address_in_every_template():
    run = run_program({"spot-redis:hostPublicIp": False})
    templates = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert len(templates) == 2  # the T types' and the others'
    for template in templates:
        (interface,) = template.inputs["networkInterfaces"]
        assert interface["associatePublicIpAddress"] == "false", template.name


def user_data(run: Run) -> str:
    return decode_user_data(host_template(run)["userData"])


def test_user_data_bootstraps_the_host_with_the_stacks_settings(run):
    script = user_data(run)
    bundle = run.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs
    assert script.startswith("#!/bin/bash")
    for setting in (
        "vol-0123456789abcdef0",
        "spot-redis-example-bucket0001",
        bundle["key"],
        "srv-0123456789abcdef",
        "/spot-redis/example",
        "/srv/redis",
        "10.99.0.0/24",
    ):
        assert setting in script, setting
    # A shim that hands over to the host agent, which does the rest (tests/unit/agent/test_boot.py).
    assert "python3 -m spot_redis.agent boot" in script
    assert len(script.splitlines()) < 80


def test_password_only_clients_reach_the_hosts_settings():
    assert "SPOT_REDIS_REDIS_LEGACY_AUTH=false" in user_data(run_program())
    assert "SPOT_REDIS_REDIS_LEGACY_AUTH=true" in user_data(run_program({"spot-redis:redisLegacyAuth": "true"}))


def test_user_data_is_compressed_well_below_ec2s_limit(run):
    encoded = host_template(run)["userData"]
    assert base64.b64decode(encoded)[:2] == b"\x1f\x8b", "gzip: cloud-init unpacks it"
    assert len(base64.b64decode(encoded)) < 16 * 1024 // 2


def test_user_data_holds_no_secret(run):
    script = user_data(run)
    secrets = [*TEST_SECRETS.values()]
    secrets += [password.outputs["result"] for password in run.of_type("random:index/randomPassword:RandomPassword")]
    assert len(secrets) == 5
    for secret in secrets:
        assert secret not in script


def test_auto_scaling_group_is_one_spot_host_in_the_one_subnet(run):
    group = run.one("aws:autoscaling/group:Group").inputs
    assert (group["minSize"], group["maxSize"]) == (0, 1)
    assert group["desiredCapacity"] == 0, "created outside working hours: no host until the scheduled start"
    assert group["vpcZoneIdentifiers"] == ["subnet-0a1b2c3d4e5f60718"]
    # A rebalance recommendation must not replace the only host that can hold the data volume.
    assert group["capacityRebalance"] is False
    policy = group["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 0
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["spotAllocationStrategy"] == "price-capacity-optimized"
    overrides = [override["instanceType"] for override in policy["launchTemplate"]["overrides"]]
    assert overrides == example_config()["spot-redis:instanceTypes"]
    assert policy["launchTemplate"]["launchTemplateSpecification"] == {
        "launchTemplateId": run.named("host-template").outputs["id"],
        "version": "$Latest",
    }
    assert {"key": "spot-redis:stack", "value": STACK, "propagateAtLaunch": True} in group["tags"]


def template_of_each_type(run: Run) -> dict[str, str]:
    return {instance_type: template.name for instance_type, template in run.launch_template_of_each_type().items()}


def test_t_types_launch_with_standard_cpu_credits_and_the_others_with_no_credit_setting(run):
    """T types would launch `unlimited` (billing surplus credits); a credit setting is for T types only, so they get a
    template of their own and the others keep the plain one."""
    assert template_of_each_type(run) == {
        "t4g.small": "host-burstable-template",
        "t4g.medium": "host-burstable-template",
        "m6g.medium": "host-template",
        "m7g.medium": "host-template",
    }
    burstable = run.named("host-burstable-template").inputs
    assert burstable["creditSpecification"] == {"cpuCredits": "standard"}
    assert "creditSpecification" not in host_template(run)
    assert burstable["description"].endswith("standard CPU credits")


def test_the_burstable_template_is_the_host_template_plus_its_credits(run):
    burstable = dict(run.named("host-burstable-template").inputs)
    host = dict(host_template(run))
    for template in (burstable, host):
        template.pop("description")
    assert burstable.pop("creditSpecification") == {"cpuCredits": "standard"}
    assert burstable == host


def test_without_t_types_there_is_one_template_and_no_credit_setting():
    run = run_program({"spot-redis:instanceTypes": ["m6g.medium", "m7g.medium"]})
    (template,) = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert "creditSpecification" not in template.inputs
    assert template_of_each_type(run) == {"m6g.medium": "host-template", "m7g.medium": "host-template"}


@pytest.mark.parametrize(
    ("instance_type", "burstable"),
    [("t4g.small", True), ("t3a.medium", True), ("t2.micro", True), ("m7g.medium", False), ("trn1.2xlarge", False)],
)
def test_which_types_are_burstable(instance_type, burstable):
    assert is_burstable(instance_type) is burstable


def test_scheduled_actions_follow_working_hours_in_the_teams_time_zone(run):
    actions = {
        action["scheduledActionName"]: action for action in by_name(run, "aws:autoscaling/schedule:Schedule").values()
    }
    assert set(actions) == {"working-hours-start", "working-hours-stop"}
    assert actions["working-hours-start"]["recurrence"] == "0 9 * * 1-5"
    assert actions["working-hours-start"]["desiredCapacity"] == 1
    assert actions["working-hours-stop"]["recurrence"] == "0 19 * * 1-5"
    assert actions["working-hours-stop"]["desiredCapacity"] == 0
    assert all(action["timeZone"] == "Asia/Tokyo" for action in actions.values())
    assert all(action["autoscalingGroupName"] == "spot-redis-example-redis" for action in actions.values())


def test_host_role_has_ssm_core_and_its_own_policy(run):
    attachments = {a.inputs["policyArn"] for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" in attachments
    policy = json.loads(run.named("host-policy").inputs["policy"])
    resources = json.dumps(policy)
    assert "vol-0123456789abcdef0" in resources
    assert "srv-0123456789abcdef" in resources
    assert "hostedzone/Z0123456789ABCDEFGHIJ" in resources
    assert "arn:aws:s3:::spot-redis-example-bucket0001/bundles/*" in resources
    for parameter in run.of_type("aws:ssm/parameter:Parameter"):
        assert parameter.outputs["arn"] in resources
    profile = run.one("aws:iam/instanceProfile:InstanceProfile").inputs
    assert profile["role"] == run.named("host-role").outputs["name"]


# --- data -------------------------------------------------------------------------------------------------------


def test_data_volume_is_encrypted_gp3_in_the_subnets_zone(run):
    volume = run.one("aws:ebs/volume:Volume").inputs
    assert volume["encrypted"] is True
    assert volume["type"] == "gp3"
    assert volume["availabilityZone"] == "ap-northeast-1a"
    assert volume["size"] == 12  # derived from the largest type's memory: infra/volume_size.py
    assert volume["tags"]["spot-redis:volume"] == "example-data"


def test_dlm_snapshots_the_data_volume_during_working_hours(run):
    policy = run.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs
    details = policy["policyDetails"]
    assert details["resourceTypes"] == ["VOLUME"]
    assert details["targetTags"] == {"spot-redis:volume": "example-data"}
    expected = snapshot_crons(working_hours("Mon-Fri", "09:00", "19:00", "Asia/Tokyo"), 2)
    assert [schedule["createRule"]["cronExpression"] for schedule in details["schedules"]] == expected
    for schedule in details["schedules"]:
        assert schedule["retainRule"]["count"] == 14
        assert schedule["copyTags"] is True
        assert schedule["tagsToAdd"] == {"spot-redis:snapshot-of": "example-data"}
    assert policy["executionRoleArn"] == run.named("data-dlm").outputs["arn"]


def test_snapshots_carry_the_volumes_tags_and_add_none_that_it_copies(run):
    """copy_tags copies the volume's tags, the stack tag among them; tags_to_add repeating one of their keys is an
    error for DLM. Together they still tag every snapshot with the stack, which a teardown looks for."""
    volume_tags = run.one("aws:ebs/volume:Volume").inputs["tags"]
    for schedule in run.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs["policyDetails"]["schedules"]:
        assert schedule["copyTags"] is True
        assert not set(schedule["tagsToAdd"]) & set(volume_tags)
        snapshot_tags = {**volume_tags, **schedule["tagsToAdd"]}
        assert snapshot_tags["spot-redis:stack"] == STACK
        assert snapshot_tags["spot-redis:snapshot-of"] == "example-data"


def test_parameters_are_secure_strings_under_the_stack_prefix(run):
    parameters = {p.inputs["name"]: p.inputs for p in run.of_type("aws:ssm/parameter:Parameter")}
    assert set(parameters) == {
        "/spot-redis/example/redis/admin-password",
        "/spot-redis/example/redis/app-password",
        "/spot-redis/example/redis/monitor-password",
        "/spot-redis/example/slack-webhook-url",
        "/spot-redis/example/heartbeat-url",
    }
    assert all(p["type"] == "SecureString" for p in parameters.values())
    assert parameters["/spot-redis/example/slack-webhook-url"]["value"] == TEST_SECRETS["spot-redis:slackWebhookUrl"]
    passwords = {p["value"] for name, p in parameters.items() if "/redis/" in name}
    assert len(passwords) == 3, "each user has its own generated password"


def test_bundle_bucket_is_private_encrypted_versioned_and_tls_only(run):
    block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[key] for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    encryption = run.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    versioning = run.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    policy = json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert any(
        statement["Effect"] == "Deny" and statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        for statement in policy["Statement"]
    )
    bundle = run.one("aws:s3/bucketObjectv2:BucketObjectv2").inputs
    assert bundle["key"].startswith("bundles/ansible-") and bundle["key"].endswith(".zip")
    assert bundle["bucket"] == "spot-redis-example-bucket0001"


# --- platform ---------------------------------------------------------------------------------------------------


def test_ecs_cluster_runs_on_fargate_spot(run):
    providers = run.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders").inputs
    assert providers["clusterName"] == "spot-redis-example-batch"
    assert providers["defaultCapacityProviderStrategies"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


def test_cloud_map_names_redis_in_the_namespace(run):
    namespace = run.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace").inputs
    assert namespace["name"] == "staging.internal"
    assert namespace["vpc"] == "vpc-0a1b2c3d4e5f60718"
    service = run.one("aws:servicediscovery/service:Service").inputs
    assert service["name"] == "redis"
    assert service["dnsConfig"]["namespaceId"] == "ns-0123456789abcdef"
    (record,) = service["dnsConfig"]["dnsRecords"]
    assert record["type"] == "A"
    assert record["ttl"] <= 60


def test_ecr_repository_scans_and_keeps_tags_immutable(run):
    repository = run.one("aws:ecr/repository:Repository").inputs
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"]["scanOnPush"] is True
    rules = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    assert {rule["selection"]["tagStatus"] for rule in rules} == {"untagged", "any"}


def test_warmup_task_reaches_redis_by_name_with_the_app_password_from_ssm(run):
    task = run.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert task["runtimePlatform"]["cpuArchitecture"] == "X86_64", "Fargate Spot runs X86_64 tasks only"
    (container,) = json.loads(task["containerDefinitions"])
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["REDIS_HOST"] == "redis.staging.internal"
    assert environment["REDIS_USER"] == "app"
    assert container["image"].endswith("/spot-redis-example-warmup:v1")
    (secret,) = container["secrets"]
    assert secret["valueFrom"].endswith(":parameter/spot-redis/example/redis/app-password")
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/spot-redis/example/warmup"


# --- events and Lambdas -----------------------------------------------------------------------------------------

EXPECTED_ROUTES = {
    "spot-warnings": "notify",
    "instance-states": "notify",
    "launch-failures": "notify",
    "snapshot-failures": "notify",
    "dlm-errors": "notify",
    "stack-events": "notify",
    "failed-events-alarm": "notify",
    "dataset-events": "warmup",
    "warmup-requests": "warmup",
    "warmup-stopped": "warmup",
    "no-spot-capacity": "capacity",
    "group-at-zero": "capacity",
}


def test_each_rule_targets_the_right_lambda_with_an_invoke_permission(run):
    rules = {rule.name: rule for rule in run.of_type("aws:cloudwatch/eventRule:EventRule")}
    assert set(rules) == set(EXPECTED_ROUTES)
    targets = {target.inputs["rule"]: target.inputs for target in run.of_type("aws:cloudwatch/eventTarget:EventTarget")}
    permissions = {p.inputs["sourceArn"]: p.inputs for p in run.of_type("aws:lambda/permission:Permission")}
    for name, function in EXPECTED_ROUTES.items():
        rule = rules[name]
        assert json.loads(rule.inputs["eventPattern"]), name
        function_arn = run.named(f"{function}-function").outputs["arn"]
        assert targets[rule.outputs["name"]]["arn"] == function_arn, name
        permission = permissions[rule.outputs["arn"]]
        assert permission["principal"] == "events.amazonaws.com"
        assert permission["function"] == f"spot-redis-example-{function}"


def test_patterns_are_narrowed_to_this_stack(run):
    patterns = {
        rule.name: json.loads(rule.inputs["eventPattern"]) for rule in run.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    assert patterns["launch-failures"]["detail"]["AutoScalingGroupName"] == ["spot-redis-example-redis"]
    assert patterns["dlm-errors"]["resources"] == [run.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").outputs["arn"]]
    assert patterns["stack-events"]["detail"]["stack"] == [STACK]
    # warmup hears of a host that came up empty only; notify hears every custom event of the stack.
    assert patterns["dataset-events"]["detail-type"] == ["Redis Host Ready"]
    assert patterns["dataset-events"]["detail"] == {"stack": [STACK], "dataset": ["empty"]}
    assert "detail-type" not in patterns["stack-events"]
    assert patterns["failed-events-alarm"]["resources"] == [
        run.one("aws:cloudwatch/metricAlarm:MetricAlarm").outputs["arn"]
    ]
    assert patterns["warmup-stopped"]["detail"]["clusterArn"] == [run.one("aws:ecs/cluster:Cluster").outputs["arn"]]


def test_lambdas_get_their_configuration_from_the_environment(run):
    notify = run.named("notify-function").inputs
    warmup = run.named("warmup-function").inputs
    table = run.one("aws:dynamodb/table:Table").outputs["name"]
    assert notify["environment"]["variables"] == {
        "STACK_NAME": STACK,
        "IDEMPOTENCY_TABLE": table,
        "SLACK_WEBHOOK_PARAM": "/spot-redis/example/slack-webhook-url",
        "FALLBACK_TOPIC_ARN": run.one("aws:sns/topic:Topic").outputs["arn"],
        "ON_DEMAND_FALLBACK": "true",
    }
    variables = warmup["environment"]["variables"]
    assert variables["CLUSTER_ARN"] == run.one("aws:ecs/cluster:Cluster").outputs["arn"]
    assert variables["TASK_DEFINITION_ARN"] == run.one("aws:ecs/taskDefinition:TaskDefinition").outputs["arn"]
    assert variables["SUBNET_IDS"] == "subnet-0a1b2c3d4e5f60718"
    assert variables["SECURITY_GROUP_IDS"] == run.named("example-warmup").outputs["id"]
    assert variables["WORK_HOURS"] == "Mon,Tue,Wed,Thu,Fri 09:00-19:00 Asia/Tokyo"
    assert set(variables) == {
        "STACK_NAME",
        "IDEMPOTENCY_TABLE",
        "CLUSTER_ARN",
        "TASK_DEFINITION_ARN",
        "SUBNET_IDS",
        "SECURITY_GROUP_IDS",
        "ASSIGN_PUBLIC_IP",
        "WORK_HOURS",
    }
    for function in (notify, warmup):
        assert function["handler"] == "app.handler"
        assert function["architectures"] == ["arm64"]
        assert not function.get("layers"), "Powertools is in the zip (tests/unit/infra/test_lambda_bundle.py)"
        assert function["loggingConfig"]["logGroup"] == f"/aws/lambda/{function['name']}"


def test_each_lambda_zip_holds_its_code_common_and_the_event_contract_only(run):
    """`from spot_redis.events import ...` works in Lambda; the host agent (spot_redis/agent) is not shipped."""
    from tests.unit.pulumi_harness import REPO_ROOT

    for function in ("notify", "warmup"):
        files = run.named(f"{function}-function").inputs["code"].assets
        assert "app.py" in files and "common/events.py" in files
        assert sorted(path for path in files if path.startswith("spot_redis/")) == [
            "spot_redis/__init__.py",
            "spot_redis/events.py",
        ]
        assert files["spot_redis/events.py"].path == str(REPO_ROOT / "spot_redis" / "events.py")
        assert not any("__pycache__" in path or path.endswith(".pyc") for path in files)


def test_idempotency_table_uses_powertools_default_key_schema_with_ttl(run):
    table = run.one("aws:dynamodb/table:Table").inputs
    assert table["hashKey"] == "id"
    assert table["attributes"] == [{"name": "id", "type": "S"}]
    assert table["ttl"] == {"attributeName": "expiration", "enabled": True}
    assert table["billingMode"] == "PAY_PER_REQUEST"


def test_an_event_a_lambda_failed_on_is_kept_not_dropped(run):
    queue = run.one("aws:sqs/queue:Queue")
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert queue.inputs["sqsManagedSseEnabled"] is True
    configs = {
        c.inputs["functionName"]: c.inputs
        for c in run.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    }
    assert set(configs) == {"spot-redis-example-notify", "spot-redis-example-warmup", "spot-redis-example-capacity"}
    for config in configs.values():
        assert config["destinationConfig"]["onFailure"]["destination"] == queue.outputs["arn"]
    for policy in ("notify-policy", "warmup-policy", "capacity-policy"):
        statements = json.loads(run.named(policy).inputs["policy"])["Statement"]
        assert any(s["Action"] == ["sqs:SendMessage"] and s["Resource"] == queue.outputs["arn"] for s in statements)
    assert run.outputs["failedEventsQueueUrl"].endswith("/spot-redis-example-failed-events")


def test_events_waiting_in_the_failed_events_queue_raise_an_alarm_that_notify_reports(run):
    alarm = run.one("aws:cloudwatch/metricAlarm:MetricAlarm")
    queue = run.one("aws:sqs/queue:Queue")
    assert alarm.inputs["namespace"] == "AWS/SQS"
    assert alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm.inputs["dimensions"] == {"QueueName": queue.outputs["name"]}
    assert (alarm.inputs["comparisonOperator"], alarm.inputs["threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm.inputs["treatMissingData"] == "notBreaching"
    assert alarm.inputs["tags"]["spot-redis:stack"] == STACK  # notify's ownership test
    statements = json.loads(run.named("notify-policy").inputs["policy"])["Statement"]
    assert {"Action": ["cloudwatch:ListTagsForResource"], "Resource": alarm.outputs["arn"]}.items() <= next(
        s for s in statements if s["Action"] == ["cloudwatch:ListTagsForResource"]
    ).items()


def test_fallback_topic_mails_the_team(run):
    subscription = run.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert subscription["protocol"] == "email"
    assert subscription["endpoint"] == "redis-alerts@example.com"
    assert subscription["topic"] == run.one("aws:sns/topic:Topic").outputs["arn"]


# --- other stacks -----------------------------------------------------------------------------------------------


def test_deployed_during_working_hours_the_host_starts_at_once():
    run = run_program(now=INSIDE_WORKING_HOURS)
    assert run.one("aws:autoscaling/group:Group").inputs["desiredCapacity"] == 1


def test_the_first_host_boots_after_its_policy_parameters_and_bundle(run):
    needed = {"host-policy", "host-ssm-core", "bundle-ansible"}
    needed |= {parameter.name for parameter in run.of_type("aws:ssm/parameter:Parameter")}
    assert needed <= set(run.depends_on["host-group"])


def test_always_on_has_no_schedule_and_one_host():
    run = run_program({"spot-redis:alwaysOn": True}, removed=("spot-redis:workingHours",))
    assert not run.of_type("aws:autoscaling/schedule:Schedule")
    assert run.one("aws:autoscaling/group:Group").inputs["desiredCapacity"] == 1
    (schedule,) = run.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs["policyDetails"]["schedules"]
    assert schedule["createRule"]["cronExpression"] == snapshot_crons(None, 2)[0]
    assert run.named("warmup-function").inputs["environment"]["variables"]["WORK_HOURS"] == ""


def test_a_team_west_of_utc_gets_two_snapshot_schedules():
    hours = {"days": "Mon-Fri", "start": "09:00", "end": "18:00", "timeZone": "America/Los_Angeles"}
    run = run_program({"spot-redis:workingHours": hours})
    schedules = run.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs["policyDetails"]["schedules"]
    assert [s["createRule"]["cronExpression"] for s in schedules] == snapshot_crons(
        working_hours(**{"days": "Mon-Fri", "start": "09:00", "end": "18:00", "time_zone": "America/Los_Angeles"}), 2
    )
    assert len(schedules) == 2


def test_x86_stack_uses_the_amd64_image_and_task():
    run = run_program({"spot-redis:architecture": "x86_64", "spot-redis:instanceTypes": ["t3.small", "t3a.small"]})
    assert host_template(run)["imageId"].endswith("/12/latest/amd64")
    assert run.one("aws:ecs/taskDefinition:TaskDefinition").inputs["runtimePlatform"]["cpuArchitecture"] == "X86_64"


def test_bad_config_stops_the_program_before_any_resource():
    with pytest.raises(ConfigError, match="spot-redis:workingHours: unknown time zone 'Asia/Tokio'"):
        run_program(
            {"spot-redis:workingHours": {**example_config()["spot-redis:workingHours"], "timeZone": "Asia/Tokio"}}
        )


def test_a_misspelt_key_is_refused():
    with pytest.raises(ConfigError, match="spot-redis:workingHour: unknown key"):
        run_program({"spot-redis:workingHour": {"days": "Mon-Fri"}})


def test_a_webhook_that_is_not_https_stops_the_program_without_showing_it():
    with pytest.raises(Exception, match="spot-redis:slackWebhookUrl: must be an https") as error:
        run_program(slackWebhookUrl="http://hooks.example/secret-token-value")
    assert "secret-token-value" not in str(error.value)


def test_an_existing_namespace_is_used_not_created():
    run = run_program({"spot-redis:existingNamespace": True})
    assert run.of_type("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace") == []
    service = run.one("aws:servicediscovery/service:Service").inputs
    assert service["dnsConfig"]["namespaceId"] == "ns-shared0123456789"
    host_policy = run.named("host-policy").inputs["policy"]
    assert f"hostedzone/{SHARED_NAMESPACE_ZONE}" in host_policy  # the host registers its A record in that zone


def test_an_existing_namespace_that_is_not_there_stops_the_program():
    config = example_config()
    with pytest.raises(
        PreflightError, match=r"spot-redis:existingNamespace: no private DNS namespace staging\.internal"
    ):
        run_program(
            {"spot-redis:existingNamespace": True},
            account=Account(missing_ids=frozenset({config["spot-redis:namespace"]})),
        )
