"""The agent's IMDSv2 client: one token, renewed in time; a 404 is nothing there, a failure is never a notice."""

from datetime import UTC, datetime

import pytest

from lab.imds import FakeImdsServer, give_notice, give_rebalance, write_host
from spot_redis.agent.imds import (
    Imds,
    ImdsUnavailable,
    InterruptionNotice,
    MalformedMetadata,
    MissingMetadata,
    RebalanceRecommendation,
    parse_interruption_notice,
    parse_rebalance_recommendation,
)
from tests.unit.lambda_support import ManualClock

HOST = "127.0.0.1"
NOW = datetime(2026, 11, 20, 5, 12, 40, tzinfo=UTC)
MAC = "02:00:0a:d5:25:0b"


@pytest.fixture
def server(tmp_path):
    write_host(
        tmp_path, HOST, instance_id="i-0123456789abcdef0", local_ipv4="10.213.37.11", mac=MAC,
        vpc_ipv4_cidr_blocks=["10.213.37.0/24", "10.99.0.0/16"], region="eu-west-1", availability_zone="eu-west-1a",
    )  # fmt: skip
    with FakeImdsServer(tmp_path) as fake:
        fake.fault_delay_s = 0.3
        yield fake


def test_one_token_with_a_ttl_serves_many_requests(server):
    imds = Imds(server.url)
    assert imds.instance_id() == "i-0123456789abcdef0"
    assert imds.local_ipv4() == "10.213.37.11"
    assert imds.region() == "eu-west-1"
    assert server.token_ttls == [21600]


def test_the_token_is_renewed_before_it_expires(server):
    clock = ManualClock()
    imds = Imds(server.url, token_ttl_s=600, clock=clock)
    imds.instance_id()
    clock.now += 539  # more than a minute (the larger of a tenth and 60 s) is left: keep it
    imds.instance_id()
    assert server.token_ttls == [600]
    clock.now += 2  # less than a minute is left: renew before using it
    imds.instance_id()
    assert server.token_ttls == [600, 600]


def test_a_refused_token_is_replaced_and_the_request_retried_once(server):
    imds = Imds(server.url)
    imds.instance_id()
    server.expire_tokens()
    assert imds.instance_id() == "i-0123456789abcdef0"
    assert len(server.token_ttls) == 2


def test_a_token_refused_again_is_unavailable_not_a_loop(server):
    imds = Imds(server.url)
    server.faults["/latest/meta-data/instance-id"] = 401
    with pytest.raises(ImdsUnavailable, match="401"):
        imds.instance_id()
    assert len(server.token_ttls) == 2


def test_nothing_there_is_none(server):
    imds = Imds(server.url)
    assert imds.interruption_notice() is None
    assert imds.rebalance_recommendation() is None
    assert imds.get("no/such/path") is None


@pytest.mark.parametrize(
    "path, fault, said",
    [
        ("/latest/meta-data/spot/instance-action", "timeout", "timed out"),
        ("/latest/meta-data/spot/instance-action", 500, "HTTP 500"),
        ("/latest/meta-data/spot/instance-action", 503, "HTTP 503"),
        ("/latest/api/token", "timeout", "api/token: timed out"),
        ("/latest/api/token", 500, "api/token: HTTP 500"),
    ],
)
def test_a_timeout_or_a_server_error_is_unavailable(server, path, fault, said):
    server.faults[path] = fault
    with pytest.raises(ImdsUnavailable, match=said):
        Imds(server.url, timeout_s=0.1).interruption_notice()


def test_a_connection_refused_is_unavailable(server):
    url = server.url
    server.shutdown()
    server.server_close()
    with pytest.raises(ImdsUnavailable):
        Imds(url, timeout_s=0.5).interruption_notice()


def test_notices_are_typed_records(server, tmp_path):
    give_notice(tmp_path, HOST, in_seconds=120, now=NOW)
    give_rebalance(tmp_path, HOST, now=NOW)
    imds = Imds(server.url)
    assert imds.interruption_notice() == InterruptionNotice("terminate", datetime(2026, 11, 20, 5, 14, 40, tzinfo=UTC))
    assert imds.rebalance_recommendation() == RebalanceRecommendation(NOW)


def test_the_vpc_cidrs_are_those_of_the_instances_mac(server):
    imds = Imds(server.url)
    assert imds.mac() == MAC
    assert imds.vpc_cidrs() == ["10.213.37.0/24", "10.99.0.0/16"]


def test_missing_identity_is_an_error_not_an_empty_string(server, tmp_path):
    write_host(tmp_path, HOST, mac=MAC)
    with pytest.raises(MissingMetadata, match="instance-id"):
        Imds(server.url).instance_id()


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '["terminate"]',
        '{"time": "2026-11-20T05:14:40Z"}',
        '{"action": "reboot", "time": "2026-11-20T05:14:40Z"}',
        '{"action": "terminate"}',
        '{"action": "terminate", "time": "in two minutes"}',
        '{"action": "terminate", "time": 1790000000}',
    ],
)
def test_a_malformed_notice_is_refused_clearly(body):
    with pytest.raises(MalformedMetadata, match="spot/instance-action"):
        parse_interruption_notice(body)


def test_a_malformed_rebalance_is_refused_clearly():
    with pytest.raises(MalformedMetadata, match="noticeTime"):
        parse_rebalance_recommendation('{"time": "2026-11-20T05:12:40Z"}')


def test_each_action_is_understood_and_times_are_utc():
    for action in ("terminate", "stop", "hibernate"):
        notice = parse_interruption_notice(f'{{"action": "{action}", "time": "2026-11-20T07:14:40+02:00"}}')
        assert notice == InterruptionNotice(action, datetime(2026, 11, 20, 5, 14, 40, tzinfo=UTC))
