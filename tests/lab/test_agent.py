"""The host agent for real: redis-1 booted through `spot_redis.agent boot` (pull mode, lab/cloud.py), its watcher
against the fake metadata service, and the drain on a Spot interruption notice, read back from the local AWS API."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab import cloud, control, imds, topology
from spot_redis.agent.settings import CLOUDMAP_INSTANCE_ID
from spot_redis.events import HOST_DRAINED, HOST_READY, REBALANCE_SEEN, SOURCE, Dataset
from tests.lab.helpers import wait_for

REDIS = topology.node("redis-1")
AGENT = "cd /opt/spot-redis/bundle && python3 -m spot_redis.agent"
LAB_OPTIONS = f"--imds-url {cloud.IMDS_URL} --aws-endpoint-url {cloud.AWS_API_URL}"


@pytest.fixture(scope="module")
def account() -> cloud.Account:
    account = cloud.Account.load(control.STATE / "aws.json")
    assert account is not None, "the lab has no local AWS account: run `make lab`"
    return account


@pytest.fixture(scope="module")
def aws(lab) -> dict:
    return cloud.clients()


class Events:
    """Everything the hosts put on the local EventBridge, as it arrives on LAB_EVENTS_QUEUE_URL (kept: each
    receive deletes what it read)."""

    def __init__(self, sqs, queue_url: str):
        self.sqs, self.queue_url, self.seen = sqs, queue_url, []

    def poll(self) -> None:
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            self.seen.append(json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def of(self, detail_type: str) -> list[dict]:
        self.poll()
        return [e for e in self.seen if e["source"] == SOURCE and e["detail-type"] == detail_type]

    def wait(self, detail_type: str, count: int, bound_s: float) -> list[dict]:
        return wait_for(f"{count} x {detail_type!r}", lambda: (found := self.of(detail_type))[count - 1:] and found,
                        bound_s, every_s=0.5)  # fmt: skip


@pytest.fixture(scope="module")
def events(aws, lab) -> Events:
    return Events(aws["sqs"], lab["LAB_EVENTS_QUEUE_URL"])


def registered_address(aws, account) -> str | None:
    instances = aws["servicediscovery"].list_instances(ServiceId=account.service_id)["Instances"]
    found = [i["Attributes"]["AWS_INSTANCE_IPV4"] for i in instances if i["Id"] == CLOUDMAP_INSTANCE_ID]
    return found[0] if found else None


def volume_holder(aws, account) -> tuple[str, str | None]:
    (volume,) = aws["ec2"].describe_volumes(VolumeIds=list(account.volumes))["Volumes"]
    attached = [a["InstanceId"] for a in volume.get("Attachments", []) if a["State"] in ("attaching", "attached")]
    return volume["State"], attached[0] if attached else None


def test_the_boot_attached_the_volume_registered_and_announced_the_dataset(aws, account, events, on_redis_host):
    (instance_id,) = account.instances
    assert volume_holder(aws, account) == ("in-use", instance_id)
    assert on_redis_host("findmnt -no SOURCE /srv/redis").stdout.strip().startswith("/dev/srlab-vol-")
    assert registered_address(aws, account) == REDIS.address
    ready = events.wait(HOST_READY.detail_type, 1, 30)[0]["detail"]
    assert ready["instance-id"] == instance_id
    assert ready["dataset"] in {d.value for d in Dataset}
    assert set(ready) <= set(HOST_READY.keys)
    assert on_redis_host("systemctl is-active spot-redis-watch redis-server").stdout.split() == ["active", "active"]


def test_redis_serves_through_the_name_registered_in_cloud_map(aws, account, client, lab):
    address = registered_address(aws, account)
    named = client.__class__(client.netns, address, lab["REDIS_PORT"])
    reply = named("PING", user=lab["REDIS_APP_USER"], password=lab["REDIS_APP_PASSWORD"])
    assert reply.stdout.strip() == "PONG", reply.stderr


def test_a_second_boot_and_then_a_push_change_nothing(on_redis_host, converge, events):
    """Re-running boot on the same instance is safe, and the push (inventories/lab) renders what the boot did."""
    before = len(events.of(HOST_READY.detail_type))
    boot = on_redis_host(f"{AGENT} boot {LAB_OPTIONS} --no-ssm-agent 2>&1 | tail -n 1")
    summary = json.loads(boot.stdout.strip().splitlines()[-1])
    print(f"second boot on the same instance, step by step: {summary['steps']}")
    assert len(events.wait(HOST_READY.detail_type, before + 1, 30)) == before + 1
    result = converge("--limit", "redis")
    assert result.returncode == 0, result.output[-3000:]
    assert result.recap()["redis-1"]["changed"] == 0, result.output[-4000:]


def test_a_rebalance_recommendation_is_announced_and_changes_nothing(aws, account, events, on_redis_host):
    before = len(events.of(REBALANCE_SEEN.detail_type))
    control_command("rebalance", REDIS.name)
    seen = events.wait(REBALANCE_SEEN.detail_type, before + 1, 20)
    assert seen[-1]["detail"]["instance-id"] in account.instances
    (instance_id,) = account.instances
    assert volume_holder(aws, account) == ("in-use", instance_id)
    assert on_redis_host("systemctl is-active redis-server").stdout.strip() == "active"
    assert registered_address(aws, account) == REDIS.address


def test_a_spot_notice_drains_the_host_within_its_two_minutes(aws, account, events, on_redis_host, admin, lab):
    (instance_id,) = account.instances
    assert admin("SET", "drill:before-notice", "kept").stdout.strip() == "OK"
    keys = int(admin("DBSIZE").stdout.strip())
    try:
        control_command("notice", REDIS.name, "--in", "120")
        drained = events.wait(HOST_DRAINED.detail_type, 1, 100)[-1]["detail"]
        print(f"drain, step by step (s): {drained['steps']}; total {drained.get('drain-seconds')} s")
        assert drained["failed-steps"] == [], drained
        assert drained["keys"] == keys
        assert volume_holder(aws, account) == ("available", None)
        group = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[account.group_name])
        assert instance_id not in [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
        assert group["AutoScalingGroups"][0]["DesiredCapacity"] == 1, "the replacement is launched at once"
        assert registered_address(aws, account) is None
        assert on_redis_host("systemctl is-active redis-server", check=False).stdout.strip() == "inactive"
        assert on_redis_host("mountpoint -q /srv/redis", check=False).returncode != 0
        wait_for("the device taken from the host", lambda: on_redis_host("ls /dev/disk/by-id", check=False)
                 .stdout.strip() == "", 10, every_s=0.5)  # fmt: skip
    finally:
        reboot_same_instance(on_redis_host, instance_id, aws, account)
    assert admin("GET", "drill:before-notice").stdout.strip() == "kept"


def reboot_same_instance(on_redis_host, instance_id: str, aws, account) -> None:
    """Give the lab back its Redis: the notice withdrawn, the watcher forgets it, the boot attaches the volume again,
    and the group takes the instance back in place of the replacement it launched (booting one is the drill's part,
    tests/lab/test_drill.py)."""
    autoscaling = aws["autoscaling"]
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[account.group_name])
    for member in [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]:
        if member != instance_id:
            autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=member, ShouldDecrementDesiredCapacity=True)
    autoscaling.attach_instances(InstanceIds=[instance_id], AutoScalingGroupName=account.group_name)
    imds.clear_notices(control.STATE / "imds", REDIS.address)
    on_redis_host(f"rm -f /var/lib/spot-redis/drained-{instance_id} && systemctl restart spot-redis-watch")
    on_redis_host(f"{AGENT} boot {LAB_OPTIONS} --no-ssm-agent >/dev/null 2>&1")


def control_command(*args: str) -> None:
    subprocess.run(["python3", "-m", "lab", *args], cwd=control.REPO, check=True, capture_output=True, timeout=60)
