"""The lab's AWS stand-in is moto's server: boto3 works against it by endpoint_url, and the daemon stops cleanly."""

import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from lab.aws_api import SPOT_RECLAIM_TAG, register_replaces, spot_reclaims, url_of, wait_until_up

REPO = Path(__file__).resolve().parents[3]


def start_moto(address: str, port: int):
    from lab.aws_api import start

    try:
        return start(address, port)
    except ModuleNotFoundError as error:  # a failure of this test, not of the whole collection
        pytest.fail(str(error))


@pytest.fixture
def aws_api():
    server = start_moto("127.0.0.1", 0)
    yield url_of(server)
    server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_line(process: subprocess.Popen, timeout_s: float) -> str:
    """The first line a daemon prints, without waiting for ever when it prints nothing."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            process.kill()
            pytest.fail(f"the daemon printed nothing in {timeout_s} s")
    return process.stdout.readline()


def test_boto3_creates_a_volume_and_reads_it_back(aws_api):
    session = boto3.session.Session(
        aws_access_key_id="lab",
        aws_secret_access_key="lab",  # noqa: S106 (moto takes any)
        region_name="ap-northeast-1",
    )
    ec2 = session.client("ec2", endpoint_url=aws_api)
    created = ec2.create_volume(
        AvailabilityZone="ap-northeast-1a",
        Size=20,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "spot-redis:stack", "Value": "lab"}]}],
    )
    [volume] = ec2.describe_volumes(VolumeIds=[created["VolumeId"]])["Volumes"]
    assert (volume["Size"], volume["VolumeType"], volume["AvailabilityZone"]) == (20, "gp3", "ap-northeast-1a")
    assert volume["State"] == "available"
    assert {"Key": "spot-redis:stack", "Value": "lab"} in volume["Tags"]


def test_wait_until_up_returns_once_it_answers(aws_api):
    started = time.monotonic()
    wait_until_up(aws_api, timeout_s=5)
    assert time.monotonic() - started < 5


def test_wait_until_up_gives_up_after_its_timeout():
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not answer within 0\.5 s"):
        wait_until_up(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    assert time.monotonic() - started < 3


def test_an_address_in_use_fails_at_once_instead_of_hanging():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="could not listen on"):
            start_moto("127.0.0.1", taken.getsockname()[1])


def test_the_daemon_logs_where_it_listens_and_exits_cleanly_on_sigterm():
    daemon = subprocess.Popen(
        [sys.executable, str(REPO / "lab" / "aws_api.py"), f"--listen=127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = first_line(daemon, timeout_s=30)
        found = re.fullmatch(r"aws_api: moto listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert found, line
        wait_until_up(found.group(1), timeout_s=5)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        daemon.kill()
        daemon.wait()


def test_registering_an_instance_id_again_replaces_its_record_as_aws_does():
    register_replaces()
    with mock_aws():
        discovery = boto3.client("servicediscovery", region_name="ap-northeast-1")
        operation = discovery.create_private_dns_namespace(Name="lab.internal", Vpc="vpc-1")["OperationId"]
        namespace = discovery.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
        service = discovery.create_service(Name="redis", NamespaceId=namespace)["Service"]["Id"]
        for address in ("10.0.0.1", "10.0.0.2"):
            discovery.register_instance(
                ServiceId=service, InstanceId="redis-host", Attributes={"AWS_INSTANCE_IPV4": address}
            )
        instances = discovery.list_instances(ServiceId=service)["Instances"]
        assert [i["Attributes"]["AWS_INSTANCE_IPV4"] for i in instances] == ["10.0.0.2"]
        discovery.deregister_instance(ServiceId=service, InstanceId="redis-host")
        assert discovery.list_instances(ServiceId=service)["Instances"] == []


@pytest.fixture
def unpatched_terminate():
    """moto's own Instance.terminate, put back after the test: spot_reclaims() patches the class for the process."""
    from moto.ec2.models.instances import Instance

    original = Instance.terminate
    yield original
    Instance.terminate = original


def terminated_state_reasons(tags: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    """Run one instance per name with its tags, terminate them all; name -> the StateReason code EC2 reports."""
    with mock.patch.dict("os.environ", {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}), mock_aws():
        ec2 = boto3.client("ec2", region_name="ap-northeast-1")
        ids = {}
        for name, instance_tags in tags.items():
            specs = [{"ResourceType": "instance", "Tags": instance_tags}] if instance_tags else []
            [instance] = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=specs)[
                "Instances"
            ]
            ids[name] = instance["InstanceId"]
        ec2.terminate_instances(InstanceIds=list(ids.values()))
        reservations = ec2.describe_instances(InstanceIds=list(ids.values()))["Reservations"]
        reasons = {i["InstanceId"]: i["StateReason"]["Code"] for r in reservations for i in r["Instances"]}
        return {name: reasons[instance_id] for name, instance_id in ids.items()}


def test_a_terminated_instance_tagged_reclaimed_ends_as_ec2_ends_a_reclaimed_spot_instance(unpatched_terminate):
    spot_reclaims()
    reasons = terminated_state_reasons(
        {"reclaimed": [{"Key": SPOT_RECLAIM_TAG, "Value": "yes"}], "other": [{"Key": "Name", "Value": "x"}], "bare": []}
    )
    assert reasons == {
        "reclaimed": "Server.SpotInstanceTermination",
        "other": "Client.UserInitiatedShutdown",
        "bare": "Client.UserInitiatedShutdown",
    }


def test_without_spot_reclaims_a_tagged_instance_ends_as_moto_says(unpatched_terminate):
    """What the patch is for; and, as it only changes tagged instances, a test that runs after it sees moto as is."""
    reasons = terminated_state_reasons({"reclaimed": [{"Key": SPOT_RECLAIM_TAG, "Value": "yes"}]})
    assert reasons == {"reclaimed": "Client.UserInitiatedShutdown"}


def test_spot_reclaims_twice_wraps_terminate_once(unpatched_terminate):
    from moto.ec2.models.instances import Instance

    spot_reclaims()
    patched = Instance.terminate
    assert patched is not unpatched_terminate
    spot_reclaims()
    assert Instance.terminate is patched
    reasons = terminated_state_reasons({"reclaimed": [{"Key": SPOT_RECLAIM_TAG, "Value": "yes"}]})
    assert reasons == {"reclaimed": "Server.SpotInstanceTermination"}
