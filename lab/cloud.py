"""The lab's stand-in for a stack's AWS account, for the hosts that boot through the host agent (pull mode).

What `pulumi up` would have made, created in the local AWS API (moto's server, lab/aws_api.py) on the bridge:
the bundle in S3, the passwords and webhook URLs in SSM, the data volume, an Auto Scaling group whose instance is
the lab host, the Cloud Map namespace and service, and an EventBridge rule that copies every event of the default
bus to an SQS queue (LAB_EVENTS_QUEUE_URL), so that what the hosts announced can be read back. The fake metadata
service (lab/imds.py) tells each such host its instance id, address and "VPC".

The one place where the lab cannot behave like AWS is the attached volume's block device (moto's attach_volume
only changes a state): `sync_volume_devices` is that seam. It makes the volume's disk image a loop device and gives
it, as a device node with udev's by-id name, to the host the volume is attached to in moto, and takes it away when
it is detached. Everything else the host does is the production path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import topology
from spot_redis.agent.settings import HostSettings

REGION = "ap-northeast-1"
ZONE = "ap-northeast-1a"
STACK = "lab"
FAKE_CREDENTIALS = "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
AWS_API_URL = f"http://{topology.GATEWAY}:{topology.AWS_API_PORT}"
IMDS_URL = f"http://{topology.GATEWAY}:{topology.IMDS_PORT}"
WHEELS_URL = f"http://{topology.GATEWAY}:{topology.WHEELS_PORT}/"
BUNDLE_BUCKET = "spot-redis-lab-bundles"
NAMESPACE = "lab.spot-redis.internal"
EVENTS_QUEUE = "spot-redis-lab-events"
# The lab's "VPC", as the metadata service tells it: only the allowed client, so that the host firewall the boot
# derives from it admits what inventories/lab admits (the outsider stays out).
LAB_VPC_CIDRS = ("10.213.37.51/32",)


@dataclass
class Account:
    """The lab account's ids, kept in .lab/aws.json for the seam and the tests."""

    volumes: dict[str, str] = field(default_factory=dict)  # volume id -> disk image
    instances: dict[str, str] = field(default_factory=dict)  # instance id -> lab host name
    hosts: dict[str, dict] = field(default_factory=dict)  # lab host name -> its HostSettings, as a dict
    group_name: str = ""
    service_id: str = ""
    namespace_id: str = ""
    queue_url: str = ""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Account | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def settings(self, host: str) -> HostSettings:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.hosts[host].items()}
        return HostSettings(**values)


def clients() -> dict:
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    make = lambda name: boto3.client(name, region_name=REGION, endpoint_url=AWS_API_URL)  # noqa: E731
    return {name: make(name) for name in ("ec2", "autoscaling", "s3", "ssm", "servicediscovery", "events", "sqs")}


def is_seeded(aws: dict, account: Account | None) -> bool:
    """The API still holds this account (a restarted moto server forgets everything)."""
    if account is None or not account.volumes:
        return False
    try:
        aws["ec2"].describe_volumes(VolumeIds=list(account.volumes))
    except Exception:
        return False
    return True


def seed(
    aws: dict, *, node: topology.Node, disk_image: Path, bundle: bytes, secrets: dict[str, str], ansible_core: str
) -> Account:
    """Create the stack's resources for one agent-booted host; returns their ids."""
    account = Account()
    ec2 = aws["ec2"]
    tags = [{"Key": "spot-redis:stack", "Value": STACK}]
    vpc_id = ec2.create_vpc(CidrBlock=str(topology.SUBNET))["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(topology.SUBNET), AvailabilityZone=ZONE)["Subnet"][
        "SubnetId"
    ]
    volume = ec2.create_volume(
        AvailabilityZone=ZONE, Size=1, VolumeType="gp3", Encrypted=True,
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
    )  # fmt: skip
    account.volumes[volume["VolumeId"]] = str(disk_image)
    account.group_name = f"spot-redis-{STACK}-redis"
    template = ec2.create_launch_template(
        LaunchTemplateName=f"spot-redis-{STACK}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    aws["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName=account.group_name, MinSize=0, MaxSize=1, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"}, VPCZoneIdentifier=subnet_id,
        Tags=[{"Key": "spot-redis:stack", "Value": STACK, "PropagateAtLaunch": True}],
    )  # fmt: skip
    group = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[account.group_name])
    instance_id = group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    account.instances[instance_id] = node.name
    namespace_op = aws["servicediscovery"].create_private_dns_namespace(Name=NAMESPACE, Vpc=vpc_id)
    operation = aws["servicediscovery"].get_operation(OperationId=namespace_op["OperationId"])["Operation"]
    account.namespace_id = operation["Targets"]["NAMESPACE"]
    account.service_id = aws["servicediscovery"].create_service(
        Name="redis", NamespaceId=account.namespace_id,
        DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
    )["Service"]["Id"]  # fmt: skip
    prefix = f"/spot-redis/{STACK}"
    for name, value in secrets.items():
        aws["ssm"].put_parameter(Name=f"{prefix}/{name}", Value=value, Type="SecureString", Overwrite=True)
    key = f"bundles/ansible-{hashlib.sha256(bundle).hexdigest()[:16]}.zip"
    aws["s3"].create_bucket(Bucket=BUNDLE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    aws["s3"].put_object(Bucket=BUNDLE_BUCKET, Key=key, Body=bundle)
    account.queue_url = aws["sqs"].create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
    queue_arn = aws["sqs"].get_queue_attributes(QueueUrl=account.queue_url, AttributeNames=["QueueArn"])
    aws["events"].put_rule(Name="lab-every-event", EventPattern=json.dumps({"source": [{"prefix": ""}]}))
    aws["events"].put_targets(
        Rule="lab-every-event", Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}]
    )
    settings = HostSettings(
        stack=STACK, region=REGION, data_volume_id=volume["VolumeId"], data_mount=node.data_mount or "/srv/redis",
        bundle_bucket=BUNDLE_BUCKET, bundle_key=key, parameter_prefix=prefix, cloudmap_service_id=account.service_id,
        ansible_core_version=ansible_core, admin_cidrs=(f"{topology.GATEWAY}/32",),
        monitoring_addresses=tuple(n.address for n in topology.NODES if n.name.startswith("monitor-")),
    )  # fmt: skip
    account.hosts[node.name] = asdict(settings)
    return account


def host_metadata(node: topology.Node, instance_id: str) -> dict:
    """What the fake metadata service tells this host about itself."""
    mac = "02:00:0a:d5:25:" + node.address.rsplit(".", 1)[1].zfill(2)[-2:]
    return {"instance-id": instance_id, "local-ipv4": node.address, "mac": mac, "region": REGION,
            "availability-zone": ZONE, "vpc-ipv4-cidr-blocks": list(LAB_VPC_CIDRS)}  # fmt: skip


# --- the seam: an attached volume appears as a block device ------------------------------------------------


def container_pid(nspawn_pid: int) -> int | None:
    """The host's own PID 1: the child of its systemd-nspawn process."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == nspawn_pid:
                return int(proc.name)
    return None


def loop_device(image: str) -> str:
    """The loop device backed by this disk image, made once."""
    found = subprocess.run(["losetup", "-j", image], capture_output=True, text=True, check=True).stdout.split(":", 1)
    if found[0]:
        return found[0]
    return subprocess.run(
        ["losetup", "--find", "--show", image], capture_output=True, text=True, check=True
    ).stdout.strip()


def device_name(volume_id: str) -> str:
    return f"nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


def sync_volume_devices(ec2, account: Account, running: dict[str, int]) -> list[str]:
    """Give each volume's device to the lab host it is attached to in the API, and take it from every other host.

    running: lab host name -> its systemd-nspawn pid. Returns what changed, for the log.
    """
    changes = []
    volumes = ec2.describe_volumes(VolumeIds=list(account.volumes))["Volumes"]
    for volume in volumes:
        attached = [
            a["InstanceId"] for a in volume.get("Attachments", []) if a.get("State") in ("attaching", "attached")
        ]
        owner = account.instances.get(attached[0]) if attached else None
        image = account.volumes[volume["VolumeId"]]
        for host, nspawn_pid in running.items():
            pid = container_pid(nspawn_pid)
            if pid is None:
                continue
            dev = Path(f"/proc/{pid}/root/dev")
            link = dev / "disk/by-id" / device_name(volume["VolumeId"])
            node = dev / f"srlab-{volume['VolumeId']}"
            if host == owner and not link.is_symlink():
                major, minor = _device_numbers(loop_device(image))
                link.parent.mkdir(parents=True, exist_ok=True)
                node.unlink(missing_ok=True)
                os.mknod(node, 0o660 | 0o060000, os.makedev(major, minor))
                link.symlink_to(f"../../{node.name}")
                changes.append(f"{volume['VolumeId']} -> {host}")
            elif host != owner and link.is_symlink():
                link.unlink()
                node.unlink(missing_ok=True)
                changes.append(f"{volume['VolumeId']} taken from {host}")
    return changes


def _device_numbers(device: str) -> tuple[int, int]:
    rdev = os.stat(device).st_rdev
    return os.major(rdev), os.minor(rdev)
