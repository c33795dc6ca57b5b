"""`spot-redis export-rdb`: the host's dataset saved (BGSAVE) and put in S3, where ElastiCache can create the
valkey-serverless engine's cache from it.

AWS terms: an S3 bucket of the stack's (`spot-redis-<stack>-rdb-<account>`, made on first use: private, SSE-S3,
TLS only, readable by ElastiCache's snapshot service in this region), a presigned PUT URL for one object under `rdb/`,
and an SSM Run Command (AWS-RunShellScript) on the running host that saves and uploads with that URL. The host's
role needs no new permission: the URL carries the operator's. The command then checks the object is an RDB file and
prints the `pulumi config` lines that switch the engine (README "When the team outgrows one host").
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from infra.config import NAMESPACE
from infra.iam_documents import deny_without_tls
from spot_redis.cli import aws
from spot_redis.cli.context import CliError, Stack

PREFIX = "rdb/"
RDB_MAGIC = b"REDIS"  # every RDB file starts with REDIS and a 4-digit format version
URL_SECONDS = 3600  # the presigned PUT: one object, one hour
SAVE_TIMEOUT_S = 1800  # BGSAVE of a few GB takes a minute or two; the host gives up after this
COMMAND_TIMEOUT_S = 3600  # SSM's execution timeout for the whole script (save and upload)
POLL_S = 3.0
TERMINAL = ("Success", "Cancelled", "TimedOut", "Failed", "Cancelling")
CREDENTIALS_FILE = "/etc/spot-redis/redis-admin.env"  # the redis role's redis_admin_credentials_file
DATA_DIR = "/srv/redis"  # the redis role's redis_data_dir; dbfilename dump.rdb (redis.conf.j2)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-rdb",
        help="save the host's dataset and put the RDB file in S3 for the valkey-serverless engine",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--bucket", help="the S3 bucket (default: spot-redis-<stack>-rdb-<account>, made if missing)")
    parser.add_argument(
        "--timeout", type=int, default=COMMAND_TIMEOUT_S, help=f"seconds for the save and upload ({COMMAND_TIMEOUT_S})"
    )
    parser.set_defaults(func=run)


def bucket_name(stack: str, account: str) -> str:
    return f"{NAMESPACE}-{stack}-rdb-{account}"


def object_key(stack: str, now: Any) -> str:
    return f"{PREFIX}{stack}-{now:%Y%m%dT%H%M%SZ}.rdb"


def bucket_policy(bucket: str, region: str) -> str:
    """TLS only for everyone; ElastiCache's snapshot service (in this region) may read the RDB files, as creating a
    cache from an RDB file in S3 requires (ElastiCache User Guide, "Seeding a new cluster with an externally created
    backup": s3:GetObject on the object, s3:ListBucket and s3:GetBucketAcl on the bucket)."""
    arn = f"arn:aws:s3:::{bucket}"
    service = {"Service": f"{region}.elasticache-snapshot.amazonaws.com"}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                deny_without_tls(arn, sid="DenyWithoutTls"),
                {
                    "Sid": "ElastiCacheReadsTheRdbFiles",
                    "Effect": "Allow",
                    "Principal": service,
                    "Action": "s3:GetObject",
                    "Resource": f"{arn}/{PREFIX}*",
                },
                {
                    "Sid": "ElastiCacheListsTheBucket",
                    "Effect": "Allow",
                    "Principal": service,
                    "Action": ["s3:ListBucket", "s3:GetBucketAcl"],
                    "Resource": arn,
                },
            ],
        },
        indent=2,
    )


def ensure_bucket(s3: Any, bucket: str, region: str, stack: str) -> bool:
    """The bucket, private, encrypted (SSE-S3), TLS only and readable by ElastiCache; made when missing. Returns whether
    it was made. Applied every time, so a bucket given with --bucket gets the same settings."""
    try:
        s3.head_bucket(Bucket=bucket)
        made = False
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
        made = True
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(bucket, region))
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": f"{NAMESPACE}:stack", "Value": stack}]})
    return made


def presigned_put(session: Any, region: str, bucket: str, key: str) -> str:
    """A URL that lets one PUT of ``key`` through for URL_SECONDS: Signature Version 4 and the region's endpoint (S3
    refuses SigV2 for buckets made since 2020, which boto3's default presigning may still use)."""
    from botocore.config import Config

    client = session.client(
        "s3", region_name=region, config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    )
    return client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=URL_SECONDS)


def host_script(
    url: str,
    *,
    credentials_file: str = CREDENTIALS_FILE,
    data_dir: str = DATA_DIR,
    save_timeout_s: int = SAVE_TIMEOUT_S,
) -> str:
    """What the host runs (as root, through SSM): wait for any save in progress, BGSAVE, wait for LASTSAVE to move and
    the save to be ok, then PUT dump.rdb to the presigned URL. The admin's password stays in redis-cli's environment
    (REDISCLI_AUTH, from the credentials file), never on a command line."""
    upload = (
        "import os, sys, urllib.request\n"
        "url, path = sys.argv[1:]\n"
        "with open(path, 'rb') as body:\n"
        "    size = os.fstat(body.fileno()).st_size\n"
        "    request = urllib.request.Request(url, data=body, method='PUT', headers={'Content-Length': str(size)})\n"
        "    urllib.request.urlopen(request, timeout=600).read()\n"
        "print(f'spot-redis export-rdb: uploaded {size} bytes')\n"
    )
    return "\n".join(
        [
            "set -euo pipefail",
            f"set -a; . {shlex.quote(credentials_file)}; set +a",
            'cli() { redis-cli --no-auth-warning --user "$REDIS_ADMIN_USER" "$@" | tr -d "\\r"; }',
            'field() { cli INFO persistence | sed -n "s/^$1://p"; }',
            f"deadline=$((SECONDS + {int(save_timeout_s)}))",
            'wait_for() { while ! eval "$1"; do',
            '  if ((SECONDS > deadline)); then echo "spot-redis export-rdb: $2" >&2; exit 1; fi; sleep 1; done; }',
            'wait_for \'[ "$(field rdb_bgsave_in_progress)" = 0 ]\' "a save in progress did not finish"',
            "before=$(cli LASTSAVE)",
            "cli BGSAVE SCHEDULE",
            'wait_for \'[ "$(cli LASTSAVE)" != "$before" ] && [ "$(field rdb_bgsave_in_progress)" = 0 ]\' '
            '"BGSAVE did not finish"',
            'if [ "$(field rdb_last_bgsave_status)" != ok ]; then',
            '  echo "spot-redis export-rdb: BGSAVE failed" \\',
            '    "(rdb_last_bgsave_status: $(field rdb_last_bgsave_status))" >&2',
            "  exit 1",
            "fi",
            f"python3 - {shlex.quote(url)} {shlex.quote(data_dir + '/dump.rdb')} <<'PYTHON'",
            upload.rstrip("\n"),
            "PYTHON",
        ]
    )


def run(invocation: Any) -> Any:
    from spot_redis.cli.main import Result

    args = invocation.args
    stack: Stack = invocation.stack
    tools = invocation.tools
    instance = aws.running_host(stack)
    instance_id = instance["InstanceId"]
    region = stack.region or stack.client("s3").meta.region_name
    account = stack.client("sts").get_caller_identity()["Account"]
    bucket = args.bucket or bucket_name(stack.name, account)
    s3 = stack.client("s3")
    made = ensure_bucket(s3, bucket, region, stack.name)
    key = object_key(stack.name, tools.now())
    url = presigned_put(stack.session, region, bucket, key)
    ssm = stack.client("ssm")
    command = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Comment=f"spot-redis export-rdb {stack.name}"[:100],
        Parameters={"commands": [host_script(url)], "executionTimeout": [str(args.timeout)]},
    )["Command"]["CommandId"]
    status, output = wait_for_command(ssm, command, instance_id, tools, args.timeout)
    if status != "Success":
        raise CliError(f"the host's save or upload failed ({status}): {output or 'no output'} (command {command})")
    size = check_rdb(s3, bucket, key)
    location = f"s3://{bucket}/{key}"
    lines = [
        f"Saved the dataset of {instance_id} and put it in {location} ({size:,} bytes, an RDB file).",
        f"{'Made' if made else 'Used'} the bucket {bucket}: private, SSE-S3, TLS only, readable by ElastiCache.",
        "Writes after the save are not in it: stop the writers first, or accept losing them.",
        "Next, switch the engine (README, 'When the team outgrows one host'):",
        f"  pulumi config set {NAMESPACE}:engine valkey-serverless",
        f"  pulumi config set {NAMESPACE}:cacheRestoreRdb {location}",
        f"  pulumi config set --path '{NAMESPACE}:cacheSubnetIds[0]' subnet-...   # two or three zones",
        "  pulumi config rm spot-redis:instanceTypes ... (every spot-host key; `pulumi preview` names them), then "
        "`pulumi up`",
    ]
    data = {"instance": instance_id, "bucket": bucket, "key": key, "s3": location, "bytes": size, "made-bucket": made}
    return Result(data=data, lines=lines)


def wait_for_command(ssm: Any, command: str, instance_id: str, tools: Any, timeout_s: int) -> tuple[str, str]:
    """The command's final status and the last line of its error output (or of its output)."""
    deadline = tools.monotonic() + timeout_s + 120
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command, InstanceId=instance_id)
        except ssm.exceptions.InvocationDoesNotExist:
            invocation = {"Status": "Pending"}
        status = invocation.get("Status", "Pending")
        if status in TERMINAL:
            text = (invocation.get("StandardErrorContent") or invocation.get("StandardOutputContent") or "").strip()
            return status, text.splitlines()[-1] if text else ""
        if tools.monotonic() > deadline:
            raise CliError(f"the host did not finish within {timeout_s} s (SSM command {command} is {status})")
        tools.sleep(POLL_S)


def check_rdb(s3: Any, bucket: str, key: str) -> int:
    """The object's size, once it is known to be an RDB file (the host's upload may have put nothing, or HTML)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        raise CliError(f"the host reported success but s3://{bucket}/{key} is not there") from None
    start = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-8")["Body"].read()
    if not start.startswith(RDB_MAGIC):
        raise CliError(f"s3://{bucket}/{key} is not an RDB file (it starts with {start[:9]!r})")
    return int(head["ContentLength"])
