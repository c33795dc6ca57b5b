"""The interruption drill (lab/drill.py), each variant once, as `make drill` runs it; these run last (conftest.py).

Goals: with a notice, no acknowledged write is lost and the replacement has the whole dataset; killed without one,
at most the last second (AOF fsynced every second); with the disk lost, the warm-up runs once. In every variant the
keys written before the drill are on the replacement (except when the disk is lost), the registered name points at
the replacement, and the team hears of it once per message however often EventBridge delivers.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab import cloud, control, topology
from lab.drill import slack_titles
from lab.event_bus import RUN_TASK_LOG

DRILL_TIMEOUT_S = 900


def drill(variant: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "lab", "drill", "--variant", variant], cwd=control.REPO,
                            capture_output=True, text=True, timeout=DRILL_TIMEOUT_S, check=False)  # fmt: skip
    print(result.stdout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["new_address"] = topology.node(report["new_host"].split()[0]).address
    return report


def as_app(lab, address: str, *args: str) -> str:
    cmd = ["ip", "netns", "exec", lab["LAB_CLIENT_NETNS"], "redis-cli", "-h", address, "--user", lab["REDIS_APP_USER"]]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "REDISCLI_AUTH": lab["REDIS_APP_PASSWORD"]}
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=10, check=True).stdout.strip()


def registered_address() -> str | None:
    aws = cloud.clients()
    account = cloud.Account.load(control.STATE / "aws.json")
    instances = aws["servicediscovery"].list_instances(ServiceId=account.service_id)["Instances"]
    return next((i["Attributes"].get("AWS_INSTANCE_IPV4") for i in instances), None)


def instance_id(host: str) -> str:
    return host.split("(")[1].rstrip(")")


@pytest.fixture(scope="module")
def notice(lab):
    current = topology.node(cloud.Account.load(control.STATE / "aws.json").current_host)
    assert as_app(lab, current.address, "SET", "kept:before-the-notice-drill", "yes") == "OK"
    return drill("notice")


@pytest.fixture(scope="module")
def hard_kill(notice):
    return drill("hard-kill")


@pytest.fixture(scope="module")
def lost_disk(hard_kill):
    return drill("lost-disk")


def assert_replacement_serves(lab, report: dict) -> None:
    assert report["old_host"] != report["new_host"]
    assert registered_address() == report["new_address"]
    assert control.read_env()["REDIS_HOST"] == report["new_address"]
    assert as_app(lab, report["new_address"], "PING") == "PONG"


ALERTMANAGER_TITLES = ("[FIRING]", "[RESOLVED]")  # monitor-1 still watches redis-1's address, and repeats by design


def assert_one_message_each(report: dict) -> None:
    """Each event the notify function handled (delivered twice by the event bus) is one message."""
    titles = [title for title in report["slack_titles"] if not title.startswith(ALERTMANAGER_TITLES)]
    assert len(titles) == len(set(titles)), f"a message reached Slack twice: {titles}"


def test_a_notice_loses_no_acknowledged_write(lab, notice):
    assert notice["acked_writes"] > 0
    assert notice["lost_writes"] == 0
    assert notice["dataset"] == "complete"
    assert notice["keys_before_missing"] == 0
    assert as_app(lab, notice["new_address"], "GET", "kept:before-the-notice-drill") == "yes"
    assert notice["drain_s"] is not None and notice["drain_s"] < 120, "the volume must be free inside the notice"
    assert notice["warmup_tasks_started"] == 0
    assert_replacement_serves(lab, notice)


def test_a_notice_tells_the_team_what_happened_once_each(notice):
    old, new = instance_id(notice["old_host"]), instance_id(notice["new_host"])
    titles = notice["slack_titles"]
    for expected in (f"Spot interruption: Redis host {old} goes away", f"Redis is back on {new} with all its data",
                     f"Redis host {old} was reclaimed by a Spot interruption"):  # fmt: skip
        assert any(title.startswith(expected) for title in titles), f"{expected!r} not in {titles}"
    # Over the whole session: test_agent.py drained this same instance before, and one instance's hand-over is one
    # message, however often it is announced.
    handed_over = [t for t in slack_titles(0) if t.startswith(f"Redis host {old} handed over cleanly")]
    assert len(handed_over) == 1, slack_titles(0)
    assert not any("warm-up" in title.lower() for title in titles)
    assert_one_message_each(notice)


def test_a_kill_without_notice_loses_at_most_the_last_second(lab, hard_kill):
    assert hard_kill["acked_writes"] > 0
    assert hard_kill["loss_window_s"] <= 1.5
    assert hard_kill["dataset"] == "crash"
    assert hard_kill["keys_before_missing"] == 0
    assert hard_kill["warmup_tasks_started"] == 0
    assert hard_kill["drain_s"] is None
    old, new = instance_id(hard_kill["old_host"]), instance_id(hard_kill["new_host"])
    titles = hard_kill["slack_titles"]
    assert any(title.startswith(f"Redis host {old} was reclaimed by a Spot interruption") for title in titles)
    assert any(title.startswith(f"Redis on {new} restarted after a crash") for title in titles)
    assert_one_message_each(hard_kill)
    assert_replacement_serves(lab, hard_kill)


def test_a_lost_disk_starts_the_warm_up_once(lab, lost_disk):
    new = instance_id(lost_disk["new_host"])
    assert lost_disk["dataset"] == "empty"
    assert lost_disk["warmup_tasks_started"] == 1
    titles = lost_disk["slack_titles"]
    assert any(title.startswith(f"Redis on {new} started EMPTY: data lost") for title in titles)
    assert any(title.startswith(f"Cache warm-up started for Redis on {new}") for title in titles)
    assert_one_message_each(lost_disk)
    assert_replacement_serves(lab, lost_disk)


def test_the_warm_up_task_runs_on_the_stacks_cluster_with_its_network_settings(lost_disk):
    settings = cloud.Account.load(control.STATE / "aws.json").lambdas
    requests = [json.loads(line) for line in (control.STATE / RUN_TASK_LOG).read_text().splitlines()]
    (request,) = [r for r in requests if r["startedBy"] == instance_id(lost_disk["new_host"])]
    assert request["cluster"] == settings["CLUSTER_ARN"]
    assert request["taskDefinition"] == settings["TASK_DEFINITION_ARN"]
    network = request["networkConfiguration"]["awsvpcConfiguration"]
    assert network["subnets"] == [settings["SUBNET_IDS"]]
    assert network["securityGroups"] == [settings["SECURITY_GROUP_IDS"]]
