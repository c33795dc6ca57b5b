"""What an interruption drill reports (spot_redis.drill.report): the writer's log read back, the loss window, the
recovery time, and the report as a table and as one JSON line."""

from __future__ import annotations

import json

from spot_redis.drill.report import Ack, DrillReport, loss_window_s, read_acks, rto_s

OLD, NEW = "10.0.0.1", "10.0.0.2"

# Five writes on the old host, a gap while the replacement boots, two on the new one.
ACKS = [
    Ack(1, 100.0, OLD),
    Ack(2, 100.5, OLD),
    Ack(3, 101.0, OLD),
    Ack(4, 101.5, OLD),
    Ack(5, 102.25, OLD),
    Ack(6, 110.0, NEW),
    Ack(7, 110.5, NEW),
]


def report(**changes) -> DrillReport:
    fields = {
        "variant": "notice",
        "old_host": "redis-a",
        "new_host": "redis-b",
        "acked_writes": 7,
        "lost_writes": 3,
        "loss_window_s": 1.75,
        "drain_s": 4.2,
        "rto_s": 8.0,
        "dataset": "snapshot",
        "warmup_tasks_started": 1,
        "slack_titles": ["Spot interruption notice", "Volume detached", "Redis is back"],
    }
    return DrillReport(**{**fields, **changes})


def test_read_acks_reads_each_line_and_ignores_one_cut_short(tmp_path):
    log = tmp_path / "acks.jsonl"
    log.write_text(
        '{"seq": 1, "at": 100.0, "address": "10.0.0.1"}\n'
        '{"seq": 2, "at": 100.5, "address": "10.0.0.1"}\n'
        '{"seq": 3, "at": 10'  # the writer was killed in the middle of this line
    )
    assert read_acks(log) == [Ack(1, 100.0, OLD), Ack(2, 100.5, OLD)]


def test_read_acks_ignores_lines_that_are_not_acks(tmp_path):
    log = tmp_path / "acks.jsonl"
    log.write_text('\n{"seq": 1, "at": 100.0, "address": "10.0.0.1"}\n7\n{"seq": 2}\n')
    assert read_acks(log) == [Ack(1, 100.0, OLD)]


def test_the_loss_window_is_zero_when_nothing_acknowledged_was_lost():
    assert loss_window_s(ACKS, set()) == 0.0
    assert loss_window_s(ACKS, {99}) == 0.0  # a number that was never acknowledged is no loss


def test_the_loss_window_runs_from_the_last_write_that_survived_to_the_last_acknowledged_one_lost():
    assert loss_window_s(reversed(ACKS), {3, 4, 5}) == 1.75  # 102.25 - 100.5, whatever the order of the log
    assert loss_window_s(ACKS, {5}) == 0.75
    assert loss_window_s(ACKS, {2, 4}) == 1.5  # a write that survived between two lost ones does not shorten it


def test_the_rto_runs_from_the_interruption_to_the_first_write_the_new_address_acknowledged():
    assert rto_s(ACKS, interrupted_at=102.5, new_address=NEW) == 7.5
    assert rto_s(ACKS, interrupted_at=100.123, new_address=OLD) == 0.38  # rounded to 0.01 s
    assert rto_s(ACKS, interrupted_at=102.5, new_address="10.0.0.3") is None
    assert rto_s(ACKS, interrupted_at=111.0, new_address=NEW) is None  # nothing acknowledged after it


def test_the_json_line_holds_every_figure_on_one_line():
    drill = report(slack_titles=["Spot interruption\nnotice", "Redis is back"], drain_s=None)
    line = drill.json_line()
    assert "\n" not in line
    figures = json.loads(line)
    expected = {
        "variant": "notice",
        "old_host": "redis-a",
        "new_host": "redis-b",
        "acked_writes": 7,
        "lost_writes": 3,
        "loss_window_s": 1.75,
        "drain_s": None,
        "rto_s": 8.0,
        "dataset": "snapshot",
        "warmup_tasks_started": 1,
        "slack_titles": ["Spot interruption\nnotice", "Redis is back"],
    }
    assert {key: figures[key] for key in expected} == expected


def test_the_table_shows_each_figure_and_the_slack_titles_in_order():
    lines = report(drain_s=None, boot_steps={"attach": 3.5}).table().splitlines()
    assert lines[:3] == [
        "variant               notice",
        "old_host              redis-a",
        "new_host              redis-b",
    ]
    assert "drain_s               -" in lines
    assert "  boot: attach        3.5" in lines
    slack = lines.index("slack (in order):")
    assert lines[slack + 1 :] == ["  Spot interruption notice", "  Volume detached", "  Redis is back"]


def test_the_table_says_when_slack_heard_nothing():
    assert report(slack_titles=[]).table().endswith("slack (in order):\n  (nothing)")
