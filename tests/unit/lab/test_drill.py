"""The lab drill's pure parts: the replacement's node, EC2's events built from the samples, the timeline."""

from __future__ import annotations

import json

from lab import drill, topology
from tests.unit.lambda_support import EVENTS


class RecordingEvents:
    def __init__(self):
        self.entries = []

    def put_events(self, Entries):  # noqa: N803 - boto3's argument name
        self.entries += Entries
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


def test_the_replacement_is_the_other_agent_host():
    assert drill.other_agent_node("redis-1").name == "redis-2"
    assert drill.other_agent_node("redis-2").name == "redis-1"
    assert all(node.agent for node in (topology.node("redis-1"), topology.node("redis-2")))


def test_ec2_events_are_the_samples_about_the_drills_instance():
    events = RecordingEvents()
    aws_events = drill.AwsEvents(events)
    aws_events.spot_warning("i-0123456789abcdef0")
    aws_events.state_change("i-0123456789abcdef0", "terminated")
    warning, state = events.entries
    sample = json.loads((EVENTS / "ec2-spot-interruption-warning.json").read_text())
    assert (warning["Source"], warning["DetailType"]) == (sample["source"], sample["detail-type"])
    assert json.loads(warning["Detail"]) == {**sample["detail"], "instance-id": "i-0123456789abcdef0"}
    assert warning["Resources"] == [f"arn:aws:ec2:ap-northeast-1:{sample['account']}:instance/i-0123456789abcdef0"]
    assert state["DetailType"] == "EC2 Instance State-change Notification"
    assert json.loads(state["Detail"]) == {"instance-id": "i-0123456789abcdef0", "state": "terminated"}


def test_the_timeline_is_in_seconds_after_the_interruption_in_order():
    milestones = {"replacement launched": 1003.456, "data volume free": 1001.0, "old instance reclaimed": 1120.0}
    assert drill.timeline(milestones, 1000.0, rto=47.5) == {
        "data volume free": 1.0,
        "replacement launched": 3.46,
        "first write acknowledged by the replacement": 47.5,
        "old instance reclaimed": 120.0,
    }
    assert "first write acknowledged by the replacement" not in drill.timeline(milestones, 1000.0, rto=None)
