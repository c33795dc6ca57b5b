"""The stack configuration: the example is valid; every bad value stops the program with a message naming its key."""

from __future__ import annotations

import pytest

from infra.config import ConfigError, https_url, instance_architecture, parse_config
from tests.unit.pulumi_harness import example_config


def example_values() -> dict:
    return {key.split(":", 1)[1]: value for key, value in example_config().items() if key.startswith("spot-redis:")}


def parse(**changes):
    values = {**example_values(), **changes}
    return parse_config(
        {key: value for key, value in values.items() if value is not None}, stack="staging", region="ap-northeast-1"
    )


def test_the_example_is_valid():
    config = parse()
    assert config.stack == "staging"
    assert config.instance_types == ("t4g.small", "t4g.medium", "m6g.medium", "m7g.medium")
    assert config.working_hours.time_zone == "Asia/Tokyo"
    assert config.snapshot_retain_count == 14
    assert config.tag == {"spot-redis:stack": "staging"}
    assert config.parameter_prefix == "/spot-redis/staging"
    assert config.redis_dns_name == "redis.staging.internal"


def test_defaults_are_several_graviton_types():
    config = parse(instanceTypes=None, architecture=None)
    assert config.architecture == "arm64"
    assert len(config.instance_types) >= 3
    assert all(instance_architecture(t) == "arm64" for t in config.instance_types)


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("t4g.small", "arm64"),
        ("m7gd.large", "arm64"),
        ("c6gn.medium", "arm64"),
        ("a1.medium", "arm64"),
        ("t3.small", "x86_64"),
        ("m6i.large", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("t3a.micro", "x86_64"),
    ],
)
def test_instance_architecture(instance_type, architecture):
    assert instance_architecture(instance_type) == architecture


def test_always_on_replaces_working_hours():
    config = parse(workingHours=None, alwaysOn=True)
    assert config.working_hours is None


BAD_VALUES = [
    (
        {"workingHours": {"days": "Mon-Fri", "start": "09:00", "end": "19:00", "timeZone": "Asia/Tokio"}},
        "spot-redis:workingHours: unknown time zone 'Asia/Tokio'",
    ),
    (
        {"workingHours": {"days": "Mon-Fri", "start": "19:00", "end": "09:00", "timeZone": "Asia/Tokyo"}},
        "spot-redis:workingHours: .*end",
    ),
    (
        {"workingHours": {"days": "Mon-Fri", "start": "09:00", "timeZone": "Asia/Tokyo"}},
        "spot-redis:workingHours: expected days, start, end and timeZone; missing \\['end'\\]",
    ),
    (
        {"workingHours": {"days": "Mon-Fro", "start": "09:00", "end": "19:00", "timeZone": "Asia/Tokyo"}},
        "spot-redis:workingHours: .*Fro",
    ),
    ({"workingHours": None}, "spot-redis:workingHours: required unless alwaysOn"),
    ({"alwaysOn": True}, "spot-redis:alwaysOn: set either alwaysOn or workingHours"),
    ({"instanceTypes": ["t4g.small", "t3.small"]}, "spot-redis:instanceTypes: t3.small is x86_64, not arm64"),
    ({"architecture": "x86_64"}, "spot-redis:instanceTypes: t4g.small is arm64, not x86_64"),
    ({"architecture": "sparc"}, "spot-redis:architecture: 'sparc' is not one of arm64, x86_64"),
    ({"instanceTypes": ["small"]}, "spot-redis:instanceTypes: 'small' is not an instance type"),
    ({"snapshotRetainCount": 0}, "spot-redis:snapshotRetainCount: 0 is out of range"),
    ({"snapshotRetainCount": "many"}, "spot-redis:snapshotRetainCount: expected a whole number"),
    ({"snapshotEveryHours": 5}, "spot-redis:snapshotEveryHours: 5 is not one of"),
    ({"redisAllowedCidrs": ["0.0.0.0/0"]}, "spot-redis:redisAllowedCidrs: 0.0.0.0/0 would open the port"),
    ({"redisAllowedCidrs": ["::/0"]}, "spot-redis:redisAllowedCidrs: ::/0 would open the port"),
    ({"redisAllowedCidrs": ["10.20.0.1/16"]}, "spot-redis:redisAllowedCidrs: '10.20.0.1/16' is not a CIDR block"),
    ({"adminCidrs": ["0.0.0.0/0"]}, "spot-redis:adminCidrs: 0.0.0.0/0 would open the port"),
    ({"redisAllowedCidrs": [], "redisAllowedSecurityGroupIds": []}, "spot-redis:redisAllowedSecurityGroupIds: nobody"),
    ({"redisAllowedSecurityGroupIds": ["sg-nothex"]}, "spot-redis:redisAllowedSecurityGroupIds: 'sg-nothex'"),
    ({"vpcId": "vpc-12"}, "spot-redis:vpcId: 'vpc-12' does not look right"),
    ({"vpcId": None}, "spot-redis:vpcId: required"),
    ({"subnetId": "sg-0a1b2c3d4e5f60718"}, "spot-redis:subnetId: "),
    ({"availabilityZone": "us-east-1a"}, "spot-redis:availabilityZone: us-east-1a is not in the region ap-northeast-1"),
    ({"dataVolumeSizeGib": 0}, "spot-redis:dataVolumeSizeGib: 0 is out of range"),
    ({"dataVolumeSizeGib": True}, "spot-redis:dataVolumeSizeGib: expected a whole number"),
    ({"namespace": "internal"}, "spot-redis:namespace: 'internal' is not a DNS name"),
    ({"namespace": "bad_name.internal"}, "spot-redis:namespace: "),
    ({"alertEmail": "not-an-address"}, "spot-redis:alertEmail: 'not-an-address' is not an e-mail address"),
    ({"logRetentionDays": 10}, "spot-redis:logRetentionDays: 10 is not a CloudWatch retention"),
    ({"workingHour": {}}, "spot-redis:workingHour: unknown key"),
]


@pytest.mark.parametrize(
    ("changes", "message"), BAD_VALUES, ids=[next(iter(c)) + "-" + str(i) for i, (c, _) in enumerate(BAD_VALUES)]
)
def test_a_bad_value_names_its_key(changes, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        parse(**changes)


def test_a_retired_key_says_what_to_do_instead():
    with pytest.raises(ConfigError, match=r"^spot-redis:powertoolsLayerVersion: no longer used: .*remove the key"):
        parse(powertoolsLayerVersion=27)


def test_region_is_required():
    with pytest.raises(ConfigError, match="spot-redis:region: set aws:region"):
        parse_config(example_values(), stack="staging", region=None)


def test_stack_name_must_fit_resource_names():
    with pytest.raises(ConfigError, match="spot-redis:stack: stack name 'Staging_1'"):
        parse_config(example_values(), stack="Staging_1", region="ap-northeast-1")


def test_the_fallback_and_the_warmup_public_address_are_on_by_default():
    config = parse(onDemandFallback=None, warmupPublicIp=None)
    assert config.on_demand_fallback is True
    assert config.warmup_public_ip is True


@pytest.mark.parametrize("key", ["onDemandFallback", "warmupPublicIp"])
def test_the_fallback_and_the_warmup_public_address_can_be_turned_off(key):
    field = {"onDemandFallback": "on_demand_fallback", "warmupPublicIp": "warmup_public_ip"}[key]
    assert getattr(parse(**{key: False}), field) is False
    assert getattr(parse(**{key: "false"}), field) is False  # `pulumi config set key false` stores a string
    with pytest.raises(ConfigError, match=f"^spot-redis:{key}: expected true or false, got 'no'"):
        parse(**{key: "no"})


def test_password_only_clients_are_refused_by_default():
    assert parse(redisLegacyAuth=None).redis_legacy_auth is False


def test_password_only_clients_can_be_let_in():
    assert parse(redisLegacyAuth=True).redis_legacy_auth is True
    assert parse(redisLegacyAuth="true").redis_legacy_auth is True  # `pulumi config set` stores a string
    with pytest.raises(ConfigError, match=r"^spot-redis:redisLegacyAuth: expected true or false, got 'yes'"):
        parse(redisLegacyAuth="yes")


def test_numbers_set_from_the_command_line_arrive_as_strings():
    assert parse(snapshotRetainCount="7").snapshot_retain_count == 7


def test_webhook_urls_must_be_https_and_are_never_repeated():
    assert (
        https_url("slackWebhookUrl", "https://hooks.slack.com/services/T/B/x")
        == "https://hooks.slack.com/services/T/B/x"
    )
    with pytest.raises(ConfigError) as error:
        https_url("slackWebhookUrl", "http://hooks.slack.com/services/T/B/leaked")
    assert "leaked" not in str(error.value)
    assert str(error.value).startswith("spot-redis:slackWebhookUrl: ")
