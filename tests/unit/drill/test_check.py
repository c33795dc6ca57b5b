"""What is on Redis before and after a drill (spot_redis.drill.check), against a fake Redis on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from spot_redis.drill import check, resp
from spot_redis.drill.writer import PASSWORD_ENV
from tests.unit.fake_redis import PASSWORD, FakeRedis


@pytest.fixture
def redis() -> Iterator[FakeRedis]:
    with FakeRedis() as fake:
        fake.data.update({"user:2": "b", "user:1": "a", "session:9": "s", "bin:\udcff": "x"})
        fake.expiring.add("session:9")
        yield fake


@pytest.fixture
def connection(redis: FakeRedis) -> Iterator[resp.Connection]:
    connection = resp.login(redis.address, redis.port, "app", PASSWORD, 1.0)
    yield connection
    connection.close()


def test_persistent_keys_leaves_out_the_keys_with_a_ttl(connection):
    assert check.persistent_keys(connection) == ["bin:\udcff", "user:1", "user:2"]


def test_absent_keys_names_the_kept_keys_that_are_gone(redis, connection):
    kept = check.persistent_keys(connection)
    assert check.absent_keys(connection, kept) == []
    del redis.data["user:1"], redis.data["bin:\udcff"]
    assert check.absent_keys(connection, [*kept, "never:there"]) == ["bin:\udcff", "user:1", "never:there"]


def test_the_command_keeps_the_keys_then_reports_what_is_missing(redis, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    where = ["--address", redis.address, "--port", str(redis.port)]
    keys = tmp_path / "keys.json"
    assert check.main(["keys", *where, "--out", str(keys)]) == 0
    assert json.loads(keys.read_text()) == ["bin:\udcff", "user:1", "user:2"]

    acks = tmp_path / "acks.jsonl"
    acks.write_text("".join(json.dumps({"seq": n, "at": 100.0 + n, "address": "x"}) + "\n" for n in (1, 2, 3)))
    redis.data.update({"drill:r:1": "1", "drill:r:3": "3"})
    del redis.data["user:2"]
    assert check.main(["missing", *where, "--prefix", "drill:r", "--acks", str(acks), "--keys", str(keys)]) == 0
    assert json.loads(capsys.readouterr().out) == {"lost": [2], "keys_missing": ["user:2"]}


def test_the_command_wants_the_password_in_the_environment(monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(SystemExit) as exited:
        check.main(["keys", "--address", "127.0.0.1", "--out", "keys.json"])
    assert exited.value.code == 2
