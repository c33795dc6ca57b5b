"""The valkey-serverless engine (spot-redis:engine), run under Pulumi's mocks: what it declares resource by resource,
the policies over every resource of both engines, the user group's rules against the redis role's, and the
configurations refused."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import jinja2
import pytest
import yaml

from infra import acl, event_patterns, iam_documents
from infra.config import ENGINE_KEYS, SPOT_HOST, VALKEY_SERVERLESS, ConfigError, parse_config, restore_rdb_arn
from infra.preflight import PreflightError
from infra.serverless import alarm_thresholds
from spot_redis.events import CACHE_ALARMS
from tests.unit.iam_lint import parliament_findings
from tests.unit.infra.test_policies import accepts_tags
from tests.unit.pulumi_harness import ACCOUNT, STACK, Account, Run, example_config, run_program

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "ansible" / "roles" / "redis"
SECOND_SUBNET = "subnet-0b1b2c3d4e5f60718"
CACHE_SUBNETS = ["subnet-0a1b2c3d4e5f60718", SECOND_SUBNET]
ACCOUNT_WITH_TWO_ZONES = Account(subnet_zones={SECOND_SUBNET: "ap-northeast-1c"})
ENDPOINT = "spot-redis-example-abc123.serverless.apne1.cache.amazonaws.com"
RDB = "arn:aws:s3:::spot-redis-example-migration-123456789012/rdb/example-20261206T020000Z.rdb"


def host_keys_of_the_example() -> tuple[str, ...]:
    return tuple(f"spot-redis:{key}" for key in ENGINE_KEYS[SPOT_HOST] if f"spot-redis:{key}" in example_config())


def serverless_overrides(**extra: object) -> dict:
    return {"spot-redis:engine": VALKEY_SERVERLESS, "spot-redis:cacheSubnetIds": CACHE_SUBNETS, **extra}


def run_serverless(account: Account = ACCOUNT_WITH_TWO_ZONES, **extra: object) -> Run:
    return run_program(serverless_overrides(**extra), removed=host_keys_of_the_example(), account=account)


@pytest.fixture(scope="module")
def run() -> Run:
    return run_serverless()


@pytest.fixture(scope="module")
def host_run() -> Run:
    return run_program()


def by_type(run: Run) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in run.custom():
        counts[resource.type] = counts.get(resource.type, 0) + 1
    return counts


# --- the graph ------------------------------------------------------------------------------------------------


def test_the_serverless_stack_declares_the_cache_instead_of_the_host(run):
    components = {resource.type for resource in run.resources if resource.type.startswith("spot-redis:")}
    assert components == {
        f"spot-redis:stack:{kind}"
        for kind in ("CacheSecurityGroups", "Parameters", "ValkeyServerless", "Platform", "Alerting")
    }
    types = by_type(run)
    for host_only in (
        "aws:autoscaling/group:Group",
        "aws:autoscaling/schedule:Schedule",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ebs/volume:Volume",
        "aws:dlm/lifecyclePolicy:LifecyclePolicy",
        "aws:s3/bucket:Bucket",
        "aws:fis/experimentTemplate:ExperimentTemplate",
        "aws:iam/instanceProfile:InstanceProfile",
    ):
        assert host_only not in types, host_only
    assert types["aws:elasticache/serverlessCache:ServerlessCache"] == 1
    assert types["aws:elasticache/userGroup:UserGroup"] == 1
    assert types["aws:elasticache/user:User"] == 3


def test_the_graph_sizes_of_both_engines(run, host_run):
    """The figures of the closing note; a change to either graph shows here first."""
    assert (len(list(host_run.custom())), len(host_run.resources)) == (117, 125)
    assert (len(list(run.custom())), len(run.resources)) == (64, 69)


def test_stack_outputs(run):
    assert run.outputs["engine"] == "valkey-serverless"
    assert run.outputs["redisDnsName"] == "redis.staging.internal"
    assert run.outputs["cacheName"] == "spot-redis-example"
    assert run.outputs["cacheEndpoint"] == ENDPOINT
    assert run.outputs["parameterNames"]["redis-app-password"] == "/spot-redis/example/redis/app-password"
    assert not {"asgName", "dataVolumeId", "bundleBucket", "drillExperimentTemplateId"} & set(run.outputs)


def test_the_cache_is_valkey_in_the_cache_subnets_behind_its_group_with_the_limits_and_snapshots(run):
    cache = run.one("aws:elasticache/serverlessCache:ServerlessCache").inputs
    assert cache["engine"] == "valkey"
    assert cache["majorEngineVersion"] == "8"
    assert cache["name"] == "spot-redis-example"
    assert cache["subnetIds"] == CACHE_SUBNETS
    assert cache["securityGroupIds"] == [run.named("example-cache").outputs["id"]]
    assert cache["cacheUsageLimits"] == {
        "dataStorage": {"maximum": 1, "unit": "GB"},
        "ecpuPerSeconds": [{"maximum": 1000}],
    }
    assert cache["dailySnapshotTime"] == "18:00"
    assert cache["snapshotRetentionLimit"] == 14  # snapshotRetainCount: daily snapshots, kept 14 days
    assert cache["userGroupId"] == "sr-example-users"
    assert "snapshotArnsToRestores" not in cache
    assert "kmsKeyId" not in cache, "encrypted at rest with the AWS-owned key, as every serverless cache is"


def test_limits_and_snapshot_time_come_from_the_config():
    run = run_serverless(
        **{
            "spot-redis:cacheMaxDataGb": "5",
            "spot-redis:cacheMaxEcpuPerSecond": 20000,
            "spot-redis:cacheSnapshotTime": "20:30",
        }
    )
    cache = run.one("aws:elasticache/serverlessCache:ServerlessCache").inputs
    assert cache["cacheUsageLimits"] == {
        "dataStorage": {"maximum": 5, "unit": "GB"},
        "ecpuPerSeconds": [{"maximum": 20000}],
    }
    assert cache["dailySnapshotTime"] == "20:30"
    alarms = {alarm.inputs["name"]: alarm.inputs for alarm in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert alarms["spot-redis-example-cache-data-storage"]["threshold"] == 0.8 * 5 * 10**9
    assert alarms["spot-redis-example-cache-ecpu"]["threshold"] == 0.8 * 20000 * 60


def test_a_cache_made_from_the_exported_rdb_is_not_replaced_when_the_key_goes():
    run = run_serverless(**{"spot-redis:cacheRestoreRdb": RDB.replace("arn:aws:s3:::", "s3://")})
    cache = run.one("aws:elasticache/serverlessCache:ServerlessCache")
    assert cache.inputs["snapshotArnsToRestores"] == [RDB]
    assert run.ignore_changes[cache.name] == ["snapshotArnsToRestores"]


def test_the_users_are_the_roles_with_the_ssm_passwords_and_default_off(run):
    users = {user.inputs["userName"]: user.inputs for user in run.of_type("aws:elasticache/user:User")}
    parameters = {p.inputs["name"]: p.inputs["value"] for p in run.of_type("aws:ssm/parameter:Parameter")}
    assert set(users) == {"admin", "app", "default"}
    for name in ("admin", "app"):
        assert users[name]["engine"] == "valkey"
        assert users[name]["accessString"].startswith("on ")
        assert users[name]["authenticationMode"] == {
            "type": "password",
            "passwords": [parameters[f"/spot-redis/example/redis/{name}-password"]],
        }
    assert users["default"]["accessString"] == "off resetkeys resetchannels -@all"
    assert users["default"]["authenticationMode"] == {"type": "no-password-required"}
    group = run.one("aws:elasticache/userGroup:UserGroup").inputs
    assert group["engine"] == "valkey"
    assert sorted(group["userIds"]) == sorted(user["userId"] for user in users.values())


def test_redis_dns_name_is_a_cname_to_the_caches_endpoint(run):
    service = run.one("aws:servicediscovery/service:Service").inputs
    assert service["name"] == "redis"
    assert service["dnsConfig"]["dnsRecords"] == [{"type": "CNAME", "ttl": 10}]
    assert service["dnsConfig"]["routingPolicy"] == "WEIGHTED"
    assert "healthCheckConfig" not in service
    instance = run.one("aws:servicediscovery/instance:Instance").inputs
    assert instance["serviceId"] == run.one("aws:servicediscovery/service:Service").outputs["id"]
    assert instance["attributes"] == {"AWS_INSTANCE_CNAME": ENDPOINT}


def test_the_cache_admits_the_same_sources_as_the_host_and_nothing_else(run, host_run):
    def sources(run: Run, group: str) -> list[str]:
        group_id = run.named(group).outputs["id"]
        rules = [
            rule.inputs
            for rule in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
            if rule.inputs["securityGroupId"] == group_id
        ]
        assert all((rule["fromPort"], rule["toPort"], rule["ipProtocol"]) == (6379, 6379, "tcp") for rule in rules)
        return sorted(
            "warmup"
            if rule.get("referencedSecurityGroupId") == run.named("example-warmup").outputs["id"]
            else rule.get("cidrIpv4") or rule["referencedSecurityGroupId"]
            for rule in rules
        )

    host_redis = sorted(
        "warmup"
        if rule.inputs.get("referencedSecurityGroupId") == host_run.named("example-warmup").outputs["id"]
        else rule.inputs.get("cidrIpv4") or rule.inputs["referencedSecurityGroupId"]
        for rule in host_run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if rule.inputs["fromPort"] == 6379
    )
    assert sources(run, "example-cache") == host_redis == sorted(["10.20.0.0/16", "sg-0a1b2c3d4e5f60718", "warmup"])
    egress = {
        rule.inputs["fromPort"]: rule.inputs.get("referencedSecurityGroupId") or rule.inputs.get("cidrIpv4")
        for rule in run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    }
    assert egress == {6379: run.named("example-cache").outputs["id"], 443: "0.0.0.0/0"}


def test_the_warmup_task_uses_the_same_name_with_tls(run, host_run):
    def environment(run: Run) -> dict[str, str]:
        (container,) = json.loads(run.one("aws:ecs/taskDefinition:TaskDefinition").inputs["containerDefinitions"])
        return {item["name"]: item["value"] for item in container["environment"]}

    assert environment(run) == {**environment(host_run), "REDIS_TLS": "true"}
    assert "REDIS_TLS" not in environment(host_run)


# --- events ---------------------------------------------------------------------------------------------------

SERVERLESS_ROUTES = {
    "stack-events": "notify",
    "failed-events-alarm": "notify",
    "cache-alarms": "notify",
    "warmup-requests": "warmup",
    "warmup-stopped": "warmup",
}


def test_host_only_events_are_not_routed_and_the_cache_alarms_go_to_notify(run):
    rules = {rule.name: rule for rule in run.of_type("aws:cloudwatch/eventRule:EventRule")}
    assert set(rules) == set(SERVERLESS_ROUTES)
    targets = {t.inputs["rule"]: t.inputs["arn"] for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget")}
    for name, function in SERVERLESS_ROUTES.items():
        assert targets[rules[name].outputs["name"]] == run.named(f"{function}-function").outputs["arn"], name
    assert not run.of_type("aws:lambda/function:Function") or "capacity-function" not in {
        f.name for f in run.of_type("aws:lambda/function:Function")
    }
    pattern = json.loads(rules["cache-alarms"].inputs["eventPattern"])
    alarms = [alarm.outputs["arn"] for alarm in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    cache_alarms = [arn for arn in alarms if not arn.endswith("failed-events-waiting")]
    assert sorted(pattern["resources"]) == sorted(cache_alarms) and len(cache_alarms) == 2
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    statements = json.loads(run.named("notify-policy").inputs["policy"])["Statement"]
    (tags,) = [s for s in statements if s["Action"] == ["cloudwatch:ListTagsForResource"]]
    assert sorted(tags["Resource"]) == sorted(alarms)


def test_the_cache_alarms_watch_the_limits_and_notify_knows_their_names(run):
    alarms = {a.inputs["name"]: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    data, ecpu = alarms["spot-redis-example-cache-data-storage"], alarms["spot-redis-example-cache-ecpu"]
    assert (data["namespace"], data["metricName"], data["statistic"]) == (
        "AWS/ElastiCache",
        "BytesUsedForCache",
        "Maximum",
    )
    assert (ecpu["metricName"], ecpu["statistic"], ecpu["period"]) == ("ElastiCacheProcessingUnits", "Sum", 60)
    for alarm in (data, ecpu):
        assert alarm["dimensions"] == {"clusterId": "spot-redis-example"}
        assert alarm["tags"]["spot-redis:stack"] == STACK  # notify's ownership test
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
    assert {name.removeprefix("spot-redis-example-") for name in alarms} == {*CACHE_ALARMS, "failed-events-waiting"}
    settings = parse_config(
        {**serverless_values(), "cacheMaxDataGb": 1}, stack="example", region="ap-northeast-1"
    ).cache
    assert data["threshold"] == alarm_thresholds(settings)["cache-data-storage"] == 0.8e9


def test_the_alarms_pattern_refuses_nothing_to_match():
    with pytest.raises(ValueError, match="alarm_arns must not be empty"):
        event_patterns.alarms_raised([])


def test_notify_policy_without_other_alarms_is_unchanged():
    common = {
        "log_group_arn": f"arn:aws:logs:ap-northeast-1:{ACCOUNT}:log-group:/aws/lambda/x",
        "table_arn": f"arn:aws:dynamodb:ap-northeast-1:{ACCOUNT}:table/t",
        "slack_parameter_arn": f"arn:aws:ssm:ap-northeast-1:{ACCOUNT}:parameter/spot-redis/x/slack",
        "topic_arn": f"arn:aws:sns:ap-northeast-1:{ACCOUNT}:t",
        "failure_queue_arn": f"arn:aws:sqs:ap-northeast-1:{ACCOUNT}:q",
        "alarm_arn": f"arn:aws:cloudwatch:ap-northeast-1:{ACCOUNT}:alarm:a",
        "region": "ap-northeast-1",
        "account_id": ACCOUNT,
    }
    plain = json.loads(iam_documents.notify_policy(**common))
    (tags,) = [s for s in plain["Statement"] if s["Action"] == ["cloudwatch:ListTagsForResource"]]
    assert tags["Resource"] == common["alarm_arn"]
    with pytest.raises(ValueError, match="other_alarm_arns"):
        iam_documents.notify_policy(**common, other_alarm_arns=["arn:aws:sqs:ap-northeast-1:123456789012:q"])


# --- policies over every resource, both engines ---------------------------------------------------------------


@pytest.fixture(scope="module", params=[SPOT_HOST, VALKEY_SERVERLESS])
def any_run(request, run, host_run) -> Run:
    return run if request.param == VALKEY_SERVERLESS else host_run


def test_every_taggable_resource_carries_the_stack_tag(any_run):
    taggable = [r for r in any_run.custom() if accepts_tags(r.type) and r.type != "aws:autoscaling/group:Group"]
    assert len(taggable) > 25
    assert [r.name for r in taggable if r.tags.get("spot-redis:stack") != STACK] == []


def test_no_ingress_from_the_whole_internet_nor_ssh(any_run):
    rules = [r.inputs for r in any_run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    assert rules
    for rule in rules:
        if rule.get("cidrIpv4"):
            assert ipaddress.ip_network(rule["cidrIpv4"]).prefixlen > 0, rule
        assert rule["ipProtocol"] == "tcp" and not rule["fromPort"] <= 22 <= rule["toPort"], rule
    for group in any_run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.inputs.get("ingress"), "rules are separate resources"


def test_everything_that_stores_data_is_encrypted(any_run):
    for queue in any_run.of_type("aws:sqs/queue:Queue"):
        assert queue.inputs["sqsManagedSseEnabled"] is True
    for table in any_run.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["serverSideEncryption"] == {"enabled": True}
    for topic in any_run.of_type("aws:sns/topic:Topic"):
        assert topic.inputs["kmsMasterKeyId"] == "alias/aws/sns"
    for parameter in any_run.of_type("aws:ssm/parameter:Parameter"):
        assert parameter.inputs["type"] == "SecureString"
    for volume in any_run.of_type("aws:ebs/volume:Volume"):
        assert volume.inputs["encrypted"] is True
    for repository in any_run.of_type("aws:ecr/repository:Repository"):
        assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    # A serverless cache is always encrypted at rest and in transit; no argument turns either off.


def test_every_iam_document_passes_parliament(any_run):
    for resource in any_run.custom():
        for key in ("assumeRolePolicy", "policy"):
            document = resource.inputs.get(key)
            if document and resource.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
                assert parliament_findings(document) == [], f"{resource.name}.{key}"


def test_every_log_group_has_the_configured_retention(any_run):
    groups = any_run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert groups and all(group.inputs["retentionInDays"] == 30 for group in groups)


def test_the_longest_stack_name_fits_the_caches_names():
    stack = "s" * 25
    run = run_program(
        serverless_overrides(), removed=host_keys_of_the_example(), stack=stack, account=ACCOUNT_WITH_TWO_ZONES
    )
    assert len(run.one("aws:elasticache/serverlessCache:ServerlessCache").inputs["name"]) <= 40
    for user in run.of_type("aws:elasticache/user:User"):
        assert len(user.inputs["userId"]) <= acl.MAX_ID
    assert len(run.one("aws:elasticache/userGroup:UserGroup").inputs["userGroupId"]) <= acl.MAX_ID


# --- the ACL rules: one source ---------------------------------------------------------------------------------


def rendered_role_acl() -> dict[str, tuple[bool, str]]:
    """users.acl.j2 rendered with the role's defaults: user -> (on, rules without the password)."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    defaults.update(redis_admin_password="a" * 16, redis_app_password="b" * 16, redis_monitor_password="c" * 16)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701 - a Redis ACL file, not HTML
    environment.filters["hash"] = lambda value, _algorithm: "0" * 64
    environment.filters["bool"] = bool  # Ansible's; redis_legacy_auth is false by default
    text = environment.from_string((ROLE / "templates" / "users.acl.j2").read_text()).render(**defaults)
    users = {}
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "user":
            continue
        name, state, rules = words[1], words[2], [w for w in words[3:] if not re.match(r"^(#|>|resetpass$)", w)]
        users[name] = (state == "on", " ".join(rules))
    return users


def test_the_user_groups_rules_are_the_redis_roles():
    role = rendered_role_acl()
    users = acl.serverless_users()
    assert {user.user_name for user in users} == set(role) - {"monitor"}, (
        "the exporter's monitor user stays on the host"
    )
    for user in users:
        assert (user.enabled, user.rules) == role[user.user_name], user.user_name


def test_the_app_rules_are_read_from_the_role_not_copied():
    app = next(user for user in acl.serverless_users() if user.purpose == "app")
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert app.rules == " ".join(defaults["redis_app_acl_rules"].split())
    assert "-flushall" in app.access_string and app.access_string.startswith("on ~* ")


# --- configuration --------------------------------------------------------------------------------------------


def serverless_values(**changes: object) -> dict:
    values = {
        key.split(":", 1)[1]: value
        for key, value in example_config().items()
        if key.startswith("spot-redis:") and key not in host_keys_of_the_example()
    }
    values.update(engine=VALKEY_SERVERLESS, cacheSubnetIds=CACHE_SUBNETS)
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def parse(**changes: object):
    return parse_config(serverless_values(**changes), stack="staging", region="ap-northeast-1")


def test_the_serverless_defaults_cap_the_bill():
    config = parse()
    assert config.serverless and config.engine == "valkey-serverless"
    assert (config.cache.max_data_gb, config.cache.max_ecpu_per_second) == (1, 1000)
    assert config.instance_types == () and config.working_hours is None and config.on_demand_fallback is False
    assert config.cache.restore_rdb_arn is None


@pytest.mark.parametrize("key", ENGINE_KEYS[SPOT_HOST])
def test_a_serverless_stack_that_sets_a_host_setting_is_refused(key):
    value = example_config().get(f"spot-redis:{key}", True)
    with pytest.raises(ConfigError, match=rf"^spot-redis:{key}: a spot-host setting, but spot-redis:engine is "):
        parse(**{key: value})


@pytest.mark.parametrize("key", ENGINE_KEYS[VALKEY_SERVERLESS])
def test_a_host_stack_that_sets_a_cache_setting_is_refused(key):
    values = {k.split(":", 1)[1]: v for k, v in example_config().items() if k.startswith("spot-redis:")}
    with pytest.raises(
        ConfigError, match=rf"^spot-redis:{key}: a valkey-serverless setting, but spot-redis:engine is "
    ):
        parse_config({**values, key: "x"}, stack="staging", region="ap-northeast-1")


def test_the_program_refuses_both_engines_settings_before_any_resource():
    run = Run()
    with pytest.raises(
        ConfigError,
        match=r"^spot-redis:adminCidrs: a spot-host setting, but spot-redis:engine is valkey-serverless: remove it "
        r"\(and architecture, instanceTypes, workingHours, snapshotEveryHours, onDemandFallback\), or set engine",
    ):
        run_program(serverless_overrides(), run=run)
    assert not list(run.custom())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"engine": "elasticache"}, "spot-redis:engine: 'elasticache' is not one of spot-host, valkey-serverless"),
        ({"cacheSubnetIds": CACHE_SUBNETS[:1]}, "spot-redis:cacheSubnetIds: name two or three subnets"),
        ({"cacheSubnetIds": None}, "spot-redis:cacheSubnetIds: name two or three subnets"),
        ({"cacheMaxDataGb": 0}, r"spot-redis:cacheMaxDataGb: 0 is out of range \(1 to 5000\)"),
        ({"cacheMaxEcpuPerSecond": 999}, r"spot-redis:cacheMaxEcpuPerSecond: 999 is out of range"),
        ({"cacheSnapshotTime": "25:00"}, "spot-redis:cacheSnapshotTime: '25:00' does not look right"),
        ({"snapshotRetainCount": 36}, r"spot-redis:snapshotRetainCount: 36 is out of range \(1 to 35\)"),
        ({"cacheRestoreRdb": "s3://bucket/dump.aof"}, "spot-redis:cacheRestoreRdb: 's3://bucket/dump.aof' is not"),
    ],
)
def test_bad_serverless_values_are_refused_naming_their_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse(**changes)


def test_the_rdb_location_is_taken_as_s3_url_or_arn():
    assert restore_rdb_arn("s3://my-bucket/rdb/x.rdb") == "arn:aws:s3:::my-bucket/rdb/x.rdb"
    assert restore_rdb_arn("arn:aws:s3:::my-bucket/rdb/x.rdb") == "arn:aws:s3:::my-bucket/rdb/x.rdb"
    assert parse(cacheRestoreRdb=RDB).cache.restore_rdb_arn == RDB


# --- the account ----------------------------------------------------------------------------------------------


def test_cache_subnets_in_one_zone_stop_the_program():
    with pytest.raises(PreflightError, match="spot-redis:cacheSubnetIds: 2 subnets in 1 zone"):
        run_serverless(account=Account())


def test_a_cache_subnet_that_does_not_exist_stops_the_program():
    missing = Account(missing_ids=frozenset({SECOND_SUBNET}))
    with pytest.raises(PreflightError, match=f"spot-redis:cacheSubnetIds: {SECOND_SUBNET} cannot be read"):
        run_serverless(account=missing)


def test_the_serverless_stack_looks_up_no_instance_type(run):
    looked_up = [(invoke.split(":")[-1], arguments) for invoke, arguments in run.invokes]
    assert "getInstanceTypeOfferings" not in {name for name, _ in looked_up}
    subnets = [arguments["id"] for name, arguments in looked_up if name == "getSubnet"]
    assert sorted(subnets) == sorted(["subnet-0a1b2c3d4e5f60718", *CACHE_SUBNETS]), "subnetId, then each cache subnet"
