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
    current_host: str = ""  # the lab host that is the group's instance now (a drill replaces it)
    lambdas: dict[str, str] = field(default_factory=dict)  # the Lambdas' settings, as their environment
    lambda_queues: dict[str, str] = field(default_factory=dict)  # function -> the queue its rules deliver to

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Account | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def instance_of(self, host: str) -> str:
        """The newest instance id the lab host stood for."""
        return [instance for instance, name in self.instances.items() if name == host][-1]

    def settings(self, host: str) -> HostSettings:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.hosts[host].items()}
        return HostSettings(**values)


def clients() -> dict:
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    make = lambda name: boto3.client(name, region_name=REGION, endpoint_url=AWS_API_URL)  # noqa: E731
    services = ("ec2", "autoscaling", "s3", "ssm", "servicediscovery", "events", "sqs", "ecs", "dynamodb", "sns")
    return {name: make(name) for name in services}


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
    account.current_host = node.name
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
    account.lambdas = seed_lambda_resources(aws, vpc_id=vpc_id, subnet_id=subnet_id, prefix=prefix)
    account.lambda_queues = seed_lambda_routes(aws, account)
    return account


def seed_lambda_resources(aws: dict, *, vpc_id: str, subnet_id: str, prefix: str) -> dict[str, str]:
    """What the notify and warmup Lambdas use, as infra/alerting.py and infra/platform.py make it; returns the
    functions' environment."""
    dynamodb = aws["dynamodb"]
    table = f"spot-redis-{STACK}-idempotency"
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )  # fmt: skip
    ttl = {"Enabled": True, "AttributeName": "expiration"}
    dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    topic_arn = aws["sns"].create_topic(Name=f"spot-redis-{STACK}-fallback")["TopicArn"]
    cluster_arn = aws["ecs"].create_cluster(clusterName=f"spot-redis-{STACK}")["cluster"]["clusterArn"]
    task_definition_arn = aws["ecs"].register_task_definition(
        family=f"spot-redis-{STACK}-warmup",
        # Not "awsvpc" as in the stack: moto 5.2.5 fails making a task's network interface. The network settings
        # the function asks for are kept by the lab's event bus instead (.lab/run-task.jsonl).
        networkMode="bridge", cpu="256", memory="512",
        containerDefinitions=[{"name": "warmup", "image": "warmup:latest", "essential": True, "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
    group_id = aws["ec2"].create_security_group(
        GroupName=f"spot-redis-{STACK}-warmup", Description="the warm-up task: nothing inbound", VpcId=vpc_id
    )["GroupId"]
    return {
        "STACK_NAME": STACK, "IDEMPOTENCY_TABLE": table, "FALLBACK_TOPIC_ARN": topic_arn,
        "SLACK_WEBHOOK_PARAM": f"{prefix}/slack-webhook-url", "CLUSTER_ARN": cluster_arn,
        "TASK_DEFINITION_ARN": task_definition_arn, "SUBNET_IDS": subnet_id, "SECURITY_GROUP_IDS": group_id,
        "ASSIGN_PUBLIC_IP": "ENABLED",
    }  # fmt: skip


def lambda_rules(account: Account) -> dict[str, list[dict]]:
    """The event patterns of infra/alerting.py's rules, by the function they drive (those the lab's events reach)."""
    from infra import event_patterns

    cluster_arn = account.lambdas["CLUSTER_ARN"]
    family = account.lambdas["TASK_DEFINITION_ARN"].rsplit("/", 1)[-1].split(":", 1)[0]
    return {
        "notify": [
            event_patterns.spot_warnings(),
            event_patterns.instance_state_changes(),
            event_patterns.launch_failures(account.group_name),
            event_patterns.stack_events(STACK),
        ],
        "warmup": [event_patterns.dataset_events(STACK), event_patterns.warmup_task_stopped(cluster_arn, family)],
    }


def seed_lambda_routes(aws: dict, account: Account) -> dict[str, str]:
    """One queue per function, fed by the function's rules on the local EventBridge: lab/event_bus.py reads them
    and invokes the function. Returns function -> queue URL."""
    queues = {}
    for function, patterns in lambda_rules(account).items():
        url = aws["sqs"].create_queue(QueueName=f"spot-redis-{STACK}-{function}")["QueueUrl"]
        arn = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for number, pattern in enumerate(patterns):
            rule = f"spot-redis-{STACK}-{function}-{number}"
            aws["events"].put_rule(Name=rule, EventPattern=json.dumps(pattern))
            aws["events"].put_targets(Rule=rule, Targets=[{"Id": function, "Arn": arn}])
        queues[function] = url
    return queues


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
    found = loop_devices(image)
    if found:
        return found[0]
    return subprocess.run(
        ["losetup", "--find", "--show", image], capture_output=True, text=True, check=True
    ).stdout.strip()


def loop_devices(image: str) -> list[str]:
    """Every loop device backed by this disk image."""
    found = subprocess.run(["losetup", "-j", image], capture_output=True, text=True, check=False).stdout
    return [line.split(":", 1)[0] for line in found.splitlines() if line]


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
