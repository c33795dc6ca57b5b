"""The interruption watcher drains once per instance, whatever IMDS says or fails to say, and never exits."""

import logging
from datetime import UTC, datetime

import pytest

from lab.imds import FakeImdsServer, clear_notices, give_notice, give_rebalance, write_host
from spot_redis.agent.imds import Imds, InterruptionNotice
from spot_redis.agent.watch import Watcher

HOST = "127.0.0.1"
INSTANCE = "i-0123456789abcdef0"
NOW = datetime(2026, 11, 20, 5, 12, 40, tzinfo=UTC)
NOTICE_PATH = "/latest/meta-data/spot/instance-action"


class Calls(list):
    """A callback that remembers what it was called with."""

    def __call__(self, argument):
        self.append(argument)


@pytest.fixture
def imds_dir(tmp_path):
    write_host(tmp_path / "imds", HOST, instance_id=INSTANCE)
    return tmp_path / "imds"


@pytest.fixture
def server(imds_dir):
    with FakeImdsServer(imds_dir) as fake:
        fake.fault_delay_s = 0.3
        yield fake


def watcher(server, tmp_path, on_notice, on_rebalance=None, **options):
    return Watcher(
        Imds(server.url, timeout_s=0.1), on_notice, Calls() if on_rebalance is None else on_rebalance,
        instance_id=INSTANCE, state_dir=tmp_path / "state", sleep=lambda _: None, **options,
    )  # fmt: skip


def test_no_notice_no_drain(server, tmp_path):
    drains, rebalances = Calls(), Calls()
    watcher(server, tmp_path, drains, rebalances).run(stop_after=3)
    assert (drains, rebalances) == ([], [])


def test_a_notice_drains_once_across_polls_and_restarts(server, imds_dir, tmp_path):
    drains = Calls()
    give_notice(imds_dir, HOST, in_seconds=120, now=NOW)
    watcher(server, tmp_path, drains).run(stop_after=5)
    assert drains == [InterruptionNotice("terminate", datetime(2026, 11, 20, 5, 14, 40, tzinfo=UTC))]
    assert (tmp_path / "state" / f"drained-{INSTANCE}").exists()
    watcher(server, tmp_path, drains).run(stop_after=5)
    assert len(drains) == 1


def test_the_drain_is_remembered_once_done_so_a_watcher_killed_mid_drain_drains_again(server, imds_dir, tmp_path):
    marker = tmp_path / "state" / f"drained-{INSTANCE}"
    seen_marker = []
    give_notice(imds_dir, HOST, now=NOW)
    watcher(server, tmp_path, lambda _: seen_marker.append(marker.exists())).poll_once()
    assert seen_marker == [False]
    assert marker.exists()

    killed = tmp_path / "killed"
    give_notice(imds_dir, HOST, now=NOW)
    drains = Calls()

    def killed_mid_drain(notice):
        raise SystemExit("the watcher was killed mid-drain")

    with pytest.raises(SystemExit):
        watcher(server, killed, killed_mid_drain).poll_once()
    assert not (killed / "state" / f"drained-{INSTANCE}").exists()
    watcher(server, killed, drains).poll_once()
    assert len(drains) == 1


def test_a_notice_already_past_drains(server, imds_dir, tmp_path):
    drains = Calls()
    give_notice(imds_dir, HOST, in_seconds=-60)
    watcher(server, tmp_path, drains).run(stop_after=1)
    assert len(drains) == 1


def test_after_a_drain_the_watcher_idles_and_asks_nothing(server, imds_dir, tmp_path):
    sleeps = []
    give_notice(imds_dir, HOST, now=NOW)
    idle = watcher(server, tmp_path, Calls(), interval_s=2.0)
    idle.sleep = sleeps.append
    idle.run(stop_after=4)
    tokens_after_drain = len(server.token_ttls)
    idle.run(stop_after=4)
    assert sleeps == [2.0] * 8
    assert len(server.token_ttls) == tokens_after_drain == 1


@pytest.mark.parametrize("fault", ["timeout", 500])
def test_imds_unavailable_is_never_a_notice(server, imds_dir, tmp_path, fault):
    drains = Calls()
    server.faults[NOTICE_PATH] = fault
    give_notice(imds_dir, HOST, now=NOW)
    watching = watcher(server, tmp_path, drains)
    watching.run(stop_after=2)
    assert drains == []
    del server.faults[NOTICE_PATH]
    watching.run(stop_after=1)
    assert len(drains) == 1


def test_a_notice_drains_even_when_the_rebalance_path_fails(server, imds_dir, tmp_path):
    drains = Calls()
    server.faults["/latest/meta-data/events/recommendations/rebalance"] = 500
    give_notice(imds_dir, HOST, now=NOW)
    watcher(server, tmp_path, drains).poll_once()
    assert len(drains) == 1


def test_imds_unavailable_is_logged_now_and_then_not_every_poll(server, tmp_path, caplog):
    server.faults[NOTICE_PATH] = 500
    clock = [0.0]
    watching = watcher(server, tmp_path, Calls(), clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="spot-redis-agent"):
        for _ in range(20):
            watching.poll_once()
            clock[0] += 2
        assert len([r for r in caplog.records if "unavailable" in r.message]) == 1
        clock[0] += 300
        watching.poll_once()
        del server.faults[NOTICE_PATH]
        watching.poll_once()
    messages = [record.message for record in caplog.records]
    assert len([m for m in messages if "unavailable" in m]) == 2
    assert "IMDS answers again after 21 failed polls" in messages


def test_a_rebalance_is_handed_on_once_per_notice_time_and_does_not_drain(server, imds_dir, tmp_path):
    drains, rebalances = Calls(), Calls()
    watching = watcher(server, tmp_path, drains, rebalances)
    give_rebalance(imds_dir, HOST, now=NOW)
    watching.run(stop_after=3)
    give_rebalance(imds_dir, HOST, now=NOW.replace(minute=40))
    watching.run(stop_after=3)
    assert [rec.notice_time.minute for rec in rebalances] == [12, 40]
    assert drains == []
    assert not (tmp_path / "state" / f"drained-{INSTANCE}").exists()


def test_a_malformed_notice_is_ignored_and_polling_goes_on(server, imds_dir, tmp_path, caplog):
    drains = Calls()
    write_host(imds_dir, HOST, instance_id=INSTANCE, instance_action='{"action": "terminate", "time": ')
    watching = watcher(server, tmp_path, drains)
    with caplog.at_level(logging.ERROR, logger="spot-redis-agent"):
        watching.run(stop_after=3)
    assert drains == []
    assert len([record for record in caplog.records if "malformed" in record.message]) == 1
    clear_notices(imds_dir, HOST)
    give_notice(imds_dir, HOST, now=NOW)
    watching.run(stop_after=1)
    assert len(drains) == 1


def test_a_failing_callback_is_logged_and_the_loop_survives(server, imds_dir, tmp_path, caplog):
    def broken(_):
        raise RuntimeError("boom")

    give_rebalance(imds_dir, HOST, now=NOW)
    watching = watcher(server, tmp_path, broken, broken)
    with caplog.at_level(logging.ERROR, logger="spot-redis-agent"):
        watching.poll_once()
        watching.poll_once()
        give_notice(imds_dir, HOST, now=NOW)
        watching.poll_once()
        watching.poll_once()
    assert watching.drained
    assert len([record for record in caplog.records if record.exc_info]) == 2


def test_an_unexpected_error_does_not_end_the_loop(tmp_path, caplog):
    class BrokenImds:
        calls = 0

        def interruption_notice(self):
            self.calls += 1
            raise KeyError("a bug")

    imds = BrokenImds()
    watching = Watcher(imds, Calls(), Calls(), instance_id=INSTANCE, state_dir=tmp_path, sleep=lambda _: None)
    with caplog.at_level(logging.ERROR, logger="spot-redis-agent"):
        watching.run(stop_after=3)
    assert imds.calls == 3
