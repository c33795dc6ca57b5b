"""The lab's fake IMDS answers as EC2's IMDSv2 does, per host, from files another process may change."""

import http.client
import json
from datetime import UTC, datetime

import pytest

from lab.imds import (
    TOKEN_HEADER,
    TOKEN_TTL_HEADER,
    FakeImdsServer,
    clear_notices,
    give_notice,
    give_rebalance,
    read_host,
    write_host,
)
from tests.unit.lambda_support import ManualClock

HOST = "127.0.0.1"
NOW = datetime(2026, 11, 20, 5, 12, 40, tzinfo=UTC)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def imds(tmp_path, clock):
    write_host(
        tmp_path, HOST, instance_id="i-0123456789abcdef0", local_ipv4="10.213.37.11", mac="02:00:0a:d5:25:0b",
        vpc_ipv4_cidr_blocks=["10.213.37.0/24", "10.99.0.0/16"], region="eu-west-1", availability_zone="eu-west-1a",
    )  # fmt: skip
    with FakeImdsServer(tmp_path, clock=clock) as server:
        yield server


def request(server, method, path, headers=None, source=HOST) -> tuple[int, str]:
    conn = http.client.HTTPConnection(HOST, server.server_port, timeout=5, source_address=(source, 0))
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read().decode()


def token(server, ttl="60") -> str:
    status, body = request(server, "PUT", "/latest/api/token", {TOKEN_TTL_HEADER: ttl})
    assert status == 200
    return body


def get(server, path, source=HOST) -> tuple[int, str]:
    return request(server, "GET", f"/latest/meta-data/{path}", {TOKEN_HEADER: token(server)}, source)


@pytest.mark.parametrize("headers", [{}, {TOKEN_TTL_HEADER: "0"}, {TOKEN_TTL_HEADER: "21601"}, {TOKEN_TTL_HEADER: "x"}])
def test_a_token_needs_a_ttl_of_1_to_21600_seconds(imds, headers):
    assert request(imds, "PUT", "/latest/api/token", headers)[0] == 400
    assert request(imds, "PUT", "/latest/api/token", {TOKEN_TTL_HEADER: "21600"})[0] == 200


def test_a_get_without_a_valid_token_is_refused(imds):
    assert request(imds, "GET", "/latest/meta-data/instance-id")[0] == 401
    assert request(imds, "GET", "/latest/meta-data/instance-id", {TOKEN_HEADER: "made-up"})[0] == 401
    assert get(imds, "instance-id") == (200, "i-0123456789abcdef0")


def test_a_token_expires_after_its_ttl(imds, clock):
    issued = token(imds, ttl="10")
    clock.now += 9
    assert request(imds, "GET", "/latest/meta-data/instance-id", {TOKEN_HEADER: issued})[0] == 200
    clock.now += 1
    assert request(imds, "GET", "/latest/meta-data/instance-id", {TOKEN_HEADER: issued})[0] == 401


def test_expire_tokens_revokes_every_token(imds):
    issued = token(imds)
    imds.expire_tokens()
    assert request(imds, "GET", "/latest/meta-data/instance-id", {TOKEN_HEADER: issued})[0] == 401


def test_the_boot_metadata_is_served(imds):
    assert get(imds, "local-ipv4") == (200, "10.213.37.11")
    assert get(imds, "placement/region") == (200, "eu-west-1")
    assert get(imds, "placement/availability-zone") == (200, "eu-west-1a")
    assert get(imds, "mac") == (200, "02:00:0a:d5:25:0b")
    cidrs = get(imds, "network/interfaces/macs/02:00:0a:d5:25:0b/vpc-ipv4-cidr-blocks")
    assert cidrs == (200, "10.213.37.0/24\n10.99.0.0/16")
    assert get(imds, "network/interfaces/macs/02:00:0a:d5:25:ff/vpc-ipv4-cidr-blocks")[0] == 404


def test_hosts_are_told_apart_by_source_address(imds, tmp_path):
    assert get(imds, "instance-id", source="127.0.0.2")[0] == 404
    write_host(tmp_path, "127.0.0.2", instance_id="i-other")
    assert get(imds, "instance-id", source="127.0.0.2") == (200, "i-other")
    assert get(imds, "instance-id") == (200, "i-0123456789abcdef0")


def test_no_notice_is_404_until_one_is_given(imds, tmp_path):
    assert get(imds, "spot/instance-action")[0] == 404
    assert get(imds, "events/recommendations/rebalance")[0] == 404
    give_notice(tmp_path, HOST, in_seconds=120, now=NOW)
    give_rebalance(tmp_path, HOST, now=NOW)
    status, body = get(imds, "spot/instance-action")
    assert (status, json.loads(body)) == (200, {"action": "terminate", "time": "2026-11-20T05:14:40Z"})
    status, body = get(imds, "events/recommendations/rebalance")
    assert (status, json.loads(body)) == (200, {"noticeTime": "2026-11-20T05:12:40Z"})
    clear_notices(tmp_path, HOST)
    assert get(imds, "spot/instance-action")[0] == 404
    assert get(imds, "events/recommendations/rebalance")[0] == 404


def test_give_notice_fixes_the_time_also_in_the_past(tmp_path):
    write_host(tmp_path, HOST, instance_id="i-1")
    assert give_notice(tmp_path, HOST, in_seconds=-30, action="stop", now=NOW) == {
        "action": "stop",
        "time": "2026-11-20T05:12:10Z",
    }
    assert read_host(tmp_path, HOST)["instance-action"]["time"] == "2026-11-20T05:12:10Z"
    assert read_host(tmp_path, HOST)["instance-id"] == "i-1"
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial")]
    with pytest.raises(ValueError, match="action"):
        give_notice(tmp_path, HOST, action="reboot")
    with pytest.raises(FileNotFoundError):
        give_notice(tmp_path, "10.213.37.99")


def test_faults_answer_late_or_with_an_error(imds):
    imds.faults["/latest/meta-data/spot/instance-action"] = 500
    assert get(imds, "spot/instance-action")[0] == 500
    imds.faults["/latest/meta-data/instance-id"] = "timeout"
    imds.fault_delay_s = 0.3
    with pytest.raises(TimeoutError):
        conn = http.client.HTTPConnection(HOST, imds.server_port, timeout=0.1)
        conn.request("GET", "/latest/meta-data/instance-id", headers={TOKEN_HEADER: token(imds)})
        conn.getresponse()
