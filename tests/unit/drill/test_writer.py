"""The drill's writer (spot_redis.drill.writer) and its Redis client (spot_redis.drill.resp), against a fake Redis on
127.0.0.1: the name it re-resolves, the writes it logs, the ones it must not log, and what went missing."""

from __future__ import annotations

import io
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from moto import mock_aws

from spot_redis.drill import resp
from spot_redis.drill.writer import RETRY_PAUSE_S, CachedName, missing, resolver, write
from tests.unit.fake_redis import PASSWORD, FakeRedis
from tests.unit.lambda_support import ManualClock


class Resolver:
    """A resolver that answers from a script (an Exception item is raised) and counts the questions."""

    def __init__(self, *answers: str | Exception | None):
        self.answers = list(answers)
        self.asked = 0

    def __call__(self) -> str | None:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def stop_after(iterations: int, at: dict[int, Callable[[], None]] | None = None) -> Callable[[], bool]:
    """should_stop: lets the writer's loop run `iterations` times; `at` plays something before iteration n (0-based)."""
    calls = itertools.count()

    def should_stop() -> bool:
        n = next(calls)
        (at or {}).get(n, lambda: None)()
        return n >= iterations

    return should_stop


def run_writer(name: CachedName, redis: FakeRedis, iterations: int, **kwargs) -> tuple[int, list[dict]]:
    """write() for `iterations` turns of its loop, without pauses; returns (acked, the logged lines)."""
    log = io.StringIO()
    kwargs.setdefault("should_stop", stop_after(iterations))
    kwargs.setdefault("clock", itertools.count(1000.0, 0.25).__next__)
    kwargs.setdefault("sleep", lambda s: None)
    kwargs.setdefault("password", PASSWORD)
    acked = write(name, port=redis.port, user="app", prefix="drill:t", log=log, **kwargs)
    return acked, [json.loads(line) for line in log.getvalue().splitlines()]


@pytest.fixture
def redis() -> Iterator[FakeRedis]:
    with FakeRedis() as fake:
        yield fake


def second_redis(first: FakeRedis) -> FakeRedis:
    """Another fake on another loopback address, on the first one's port (the writer has one port for every
    address)."""
    try:
        return FakeRedis(address="127.0.0.2", port=first.port)
    except OSError as error:  # not every system routes all of 127/8 to the loopback
        pytest.skip(f"cannot listen on 127.0.0.2:{first.port}: {error}")


# --- CachedName ---------------------------------------------------------------------------------------------------


def test_the_name_is_asked_again_only_once_its_answer_is_as_old_as_the_ttl():
    clock = ManualClock()
    resolve = Resolver("10.0.0.1", "10.0.0.2")
    name = CachedName(resolve, ttl_s=10, clock=clock)
    assert name.address() == "10.0.0.1"
    clock.now = 1009.5
    assert (name.address(), resolve.asked) == ("10.0.0.1", 1)
    clock.now = 1010.0
    assert (name.address(), resolve.asked) == ("10.0.0.2", 2)
    clock.now = 1015.0
    assert (name.address(), resolve.asked) == ("10.0.0.2", 2)


@pytest.mark.parametrize("failure", [OSError("no answer"), None], ids=["raises", "no-address"])
def test_a_name_without_an_answer_gives_none_and_is_asked_again_at_the_next_call(failure):
    clock = ManualClock()
    resolve = Resolver(failure, "10.0.0.1")
    name = CachedName(resolve, ttl_s=10, clock=clock)
    assert name.address() is None
    assert (name.address(), resolve.asked) == ("10.0.0.1", 2)  # at once, not after the TTL
    assert (name.address(), resolve.asked) == ("10.0.0.1", 2)


# --- resolver() ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["", "10.0.0.1", "fixed:", "dns:", "cloudmap:", "cloudmap:ns", "cloudmap:ns/", "cloudmap:/redis",
     "cloudmap:a/b/c", "srv:redis.lab", "FIXED:10.0.0.1"],
)  # fmt: skip
def test_a_bad_spec_is_refused_with_the_forms_it_takes(spec):
    with pytest.raises(ValueError, match=r"use cloudmap:NAMESPACE/SERVICE, dns:NAME or fixed:ADDRESS") as raised:
        resolver(spec, 6379)
    assert repr(spec) in str(raised.value)


def test_a_fixed_spec_resolves_to_its_address():
    assert resolver("fixed:10.0.0.7", 6379)() == "10.0.0.7"


def test_a_dns_spec_asks_the_resolver():
    assert resolver("dns:127.0.0.1", 6379)() == "127.0.0.1"  # a numeric name: no lookup leaves the machine


def test_a_cloudmap_spec_discovers_the_services_address(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        discovery = boto3.client("servicediscovery", region_name="ap-northeast-1")
        operation = discovery.create_private_dns_namespace(Name="lab.internal", Vpc="vpc-1")["OperationId"]
        namespace = discovery.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
        service = discovery.create_service(Name="redis", NamespaceId=namespace)["Service"]["Id"]
        resolve = resolver("cloudmap:lab.internal/redis", 6379, region="ap-northeast-1")
        assert resolve() is None
        discovery.register_instance(ServiceId=service, InstanceId="host", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.9"})
        assert resolve() == "10.0.0.9"


# --- write() ------------------------------------------------------------------------------------------------------


def test_each_acknowledged_write_is_logged_with_its_number_time_and_address(redis):
    acked, lines = run_writer(CachedName(lambda: redis.address), redis, iterations=3)
    assert acked == 3
    assert lines == [
        {"seq": 1, "at": 1000.0, "address": "127.0.0.1"},
        {"seq": 2, "at": 1000.25, "address": "127.0.0.1"},
        {"seq": 3, "at": 1000.5, "address": "127.0.0.1"},
    ]
    assert redis.data == {"drill:t:1": "1", "drill:t:2": "2", "drill:t:3": "3"}
    assert redis.expiring == set(redis.data), "a drill's keys expire: nothing is left behind in a team's Redis"
    assert redis.logins == 1  # one connection for every write


def test_the_writer_stops_when_told_and_says_how_many_writes_were_acknowledged(redis):
    sleeps = []
    acked, lines = run_writer(CachedName(lambda: redis.address), redis, iterations=0, sleep=sleeps.append)
    assert (acked, lines, redis.data, sleeps) == (0, [], {}, [])
    acked, lines = run_writer(CachedName(lambda: redis.address), redis, iterations=5, sleep=sleeps.append,
                              interval_s=0.125)  # fmt: skip
    assert acked == len(lines) == len(redis.data) == 5
    assert sleeps == [0.125] * 5


def test_a_write_whose_connection_dropped_is_not_logged_and_its_number_is_skipped(redis):
    redis.drop_on(2)
    sleeps = []
    acked, lines = run_writer(CachedName(lambda: redis.address), redis, iterations=5, sleep=sleeps.append)
    assert [line["seq"] for line in lines] == [1, 3, 4, 5]
    assert acked == 4
    assert "drill:t:2" not in redis.data
    assert [c[:3] for c in redis.commands if c[0] == "SET"].count(["SET", "drill:t:2", "2"]) == 1  # not tried again
    assert redis.logins == 2  # a new connection after the dropped one
    assert RETRY_PAUSE_S in sleeps


def test_without_an_address_or_a_login_nothing_is_written(redis):
    sleeps = []
    acked, lines = run_writer(CachedName(Resolver(OSError("down"))), redis, iterations=3, sleep=sleeps.append)
    assert (acked, lines, sleeps) == (0, [], [RETRY_PAUSE_S] * 3)
    acked, lines = run_writer(CachedName(lambda: redis.address), redis, iterations=3, password="wrong")  # noqa: S106
    assert (acked, lines, redis.data, redis.logins) == (0, [], {}, 0)


def test_the_writer_moves_to_the_new_address_once_the_names_answer_is_older_than_the_ttl(redis):
    with second_redis(redis) as new:
        clock = ManualClock()
        record = {"address": redis.address}
        name = CachedName(lambda: record["address"], ttl_s=10, clock=clock)

        def move() -> None:
            record["address"] = new.address

        def expire() -> None:
            clock.now += 10

        # Iterations 3 and 4 still use the cached answer; iteration 5 asks again.
        acked, lines = run_writer(name, redis, iterations=8, should_stop=stop_after(8, {3: move, 5: expire}))
    assert acked == 8
    assert [(line["seq"], line["address"]) for line in lines] == [(n, "127.0.0.1") for n in range(1, 6)] + [
        (n, "127.0.0.2") for n in range(6, 9)
    ]
    assert sorted(redis.data) == [f"drill:t:{n}" for n in range(1, 6)]
    assert sorted(new.data) == [f"drill:t:{n}" for n in range(6, 9)]


# --- missing() ----------------------------------------------------------------------------------------------------


def test_missing_finds_absent_and_wrong_values_in_batches(redis):
    redis.data.update({"drill:t:1": "1", "drill:t:2": "2", "drill:t:4": "40", "drill:t:5": "5", "other:3": "3"})
    connection = resp.login(redis.address, redis.port, "app", PASSWORD, 1.0)
    try:
        assert missing(connection, "drill:t", [5, 4, 3, 2, 1, 1], batch=2) == {3, 4}
        assert missing(connection, "drill:t", []) == set()
    finally:
        connection.close()
    mgets = [c[1:] for c in redis.commands if c[0] == "MGET"]
    assert mgets == [["drill:t:1", "drill:t:2"], ["drill:t:3", "drill:t:4"], ["drill:t:5"]]


# --- resp ---------------------------------------------------------------------------------------------------------


def test_the_client_reads_each_kind_of_reply(redis):
    redis.data.update({"a": "1", "b": "2"})
    connection = resp.login(redis.address, redis.port, "app", PASSWORD, 1.0)
    try:
        assert connection.command("SET", "c", 3) == "OK"
        assert connection.command("EXISTS", "a", "b", "nope") == 2
        assert connection.command("MGET", "a", "nope", "c") == [b"1", None, b"3"]
        assert connection.command("SCAN", b"0", "COUNT", 10) == [b"0", [b"a", b"b", b"c"]]
    finally:
        connection.close()


def test_an_error_reply_raises_redis_reply_error_and_the_connection_still_works(redis):
    connection = resp.login(redis.address, redis.port, "app", PASSWORD, 1.0)
    try:
        with pytest.raises(resp.RedisReplyError, match=r"^ERR unknown command 'NOPE'$"):
            connection.command("NOPE")
        assert connection.command("SET", "k", "v") == "OK"
    finally:
        connection.close()


def test_a_wrong_password_raises_redis_reply_error(redis):
    with pytest.raises(resp.RedisReplyError, match="WRONGPASS"):
        resp.login(redis.address, redis.port, "app", "wrong", 1.0)


def serve_once(answer: bytes) -> tuple[int, threading.Thread]:
    """A server that reads one command, writes `answer`, and closes; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener, listener.accept()[0] as peer:
            peer.recv(4096)
            peer.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize(
    "answer", [b"", b"+O", b"$5\r\nab", b"*2\r\n$1\r\na\r\n", b":12"], ids=["nothing", "line", "bulk", "array", "int"]
)
def test_a_reply_cut_short_raises_connection_error(answer):
    port, thread = serve_once(answer)
    connection = resp.Connection("127.0.0.1", port, 2.0)
    try:
        with pytest.raises(ConnectionError, match="closed in the middle of a reply"):
            connection.command("GET", "k")
    finally:
        connection.close()
        thread.join(timeout=2)


def test_key_names_that_are_not_utf8_go_back_as_they_came(redis):
    """spot_redis.drill.check keeps such a name as surrogate escapes; sending it must give Redis the same bytes."""
    redis.data["bin:\udcff"] = "x"
    connection = resp.login(redis.address, redis.port, "app", PASSWORD, 1.0)
    try:
        [_, [key]] = connection.command("SCAN", "0")
        assert key == b"bin:\xff"
        assert connection.command("EXISTS", key.decode(errors="surrogateescape")) == 1
    finally:
        connection.close()
