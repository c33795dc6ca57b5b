"""spot-redis export-rdb: against moto (the bucket, its policy, the presigned upload, the SSM command), and the host's
script run for real in bash with a stand-in redis-cli and a local HTTP server in place of S3."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
import requests
from moto import mock_aws

from spot_redis.cli import export_rdb
from tests.unit import lambda_support as support
from tests.unit.cli.test_commands import NOW, FakeTime, run, start_host, world  # noqa: F401 - the fixture
from tests.unit.iam_lint import parliament_findings

RDB = b"REDIS0010\xfa\x09redis-ver\x067.0.15" + b"\x00" * 64
ACCOUNT = "123456789012"  # moto's
BUCKET = f"spot-redis-{support.STACK}-rdb-{ACCOUNT}"
BUCKET_POLICY = export_rdb.bucket_policy  # as the command writes it (the fixture below changes it under moto)


@pytest.fixture(autouse=True)
def moto_reads_a_tls_only_policy_wrongly(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto evaluates the bucket policy's TLS-only Deny without aws:SecureTransport in the request context, so it
    refuses every request, TLS or not. Under moto the bucket gets the policy without that statement; the statement
    itself is checked in test_the_bucket_policy_is_tls_only_and_lets_elasticache_read."""
    policy = export_rdb.bucket_policy

    def without_tls_deny(bucket: str, region: str) -> str:
        document = json.loads(policy(bucket, region))
        document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "DenyWithoutTls"]
        return json.dumps(document)

    monkeypatch.setattr(export_rdb, "bucket_policy", without_tls_deny)


def test_the_bucket_policy_is_tls_only_and_lets_elasticache_read() -> None:
    (tls, read, list_bucket) = json.loads(BUCKET_POLICY("bkt", "ap-northeast-1"))["Statement"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Resource"] == ["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    service = {"Service": "ap-northeast-1.elasticache-snapshot.amazonaws.com"}
    assert (read["Principal"], read["Action"], read["Resource"]) == (service, "s3:GetObject", "arn:aws:s3:::bkt/rdb/*")
    assert (list_bucket["Principal"], list_bucket["Resource"]) == (service, "arn:aws:s3:::bkt")
    assert parliament_findings(json.dumps({"Version": "2012-10-17", "Statement": [tls, read, list_bucket]})) == []


class HostThroughSsm:
    """The SSM client, with the host played by the test: send_command puts what the host's script would where the
    presigned URL in the script points, or fails as the script would (test_the_presigned_url_lets_the_put_through
    sends a PUT to such a URL)."""

    def __init__(self, real: Any, s3: Any, *, body: bytes | None = RDB, status: str = "Success", error: str = ""):
        self.real, self.s3, self.body, self.status, self.error = real, s3, body, status, error
        self.exceptions = real.exceptions
        self.sent: list[dict[str, Any]] = []

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        (script,) = kwargs["Parameters"]["commands"]
        url = urllib.parse.urlsplit(re.search(r"python3 - '?(https://[^' ]+)'? ", script)[1])
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url.query and "X-Amz-Expires=3600" in url.query
        if self.body is not None:
            self.s3.put_object(Bucket=url.hostname.split(".")[0], Key=url.path.lstrip("/"), Body=self.body)
        return {"Command": {"CommandId": "cmd-1"}}

    def get_command_invocation(self, **kwargs: Any) -> dict[str, Any]:
        return {"Status": self.status, "StandardErrorContent": self.error, "StandardOutputContent": ""}


def with_host(world: dict[str, Any], **host: Any) -> HostThroughSsm:  # noqa: F811
    start_host(world)
    stack = world["stack"]
    fake = HostThroughSsm(stack.client("ssm"), stack.client("s3"), **host)
    stack._clients["ssm"] = fake
    return fake


def test_exports_the_dataset_to_a_bucket_elasticache_can_read(world, capsys) -> None:  # noqa: F811
    host = with_host(world)
    assert run(world, "export-rdb", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    key = f"rdb/{support.STACK}-{NOW:%Y%m%dT%H%M%SZ}.rdb"
    assert data["s3"] == f"s3://{BUCKET}/{key}" and data["bytes"] == len(RDB) and data["made-bucket"] is True
    s3 = world["session"].client("s3")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == RDB
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    reads = {s["Sid"]: s for s in policy["Statement"]}
    service = {"Service": f"{support.REGION}.elasticache-snapshot.amazonaws.com"}
    assert reads["ElastiCacheReadsTheRdbFiles"]["Principal"] == service
    assert reads["ElastiCacheReadsTheRdbFiles"]["Resource"] == f"arn:aws:s3:::{BUCKET}/rdb/*"
    assert set(reads["ElastiCacheListsTheBucket"]["Action"]) == {"s3:ListBucket", "s3:GetBucketAcl"}
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (sent,) = host.sent
    (group,) = world["session"].client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert sent["InstanceIds"] == [group["Instances"][0]["InstanceId"]]
    assert sent["DocumentName"] == "AWS-RunShellScript"


def test_the_lines_say_what_to_set_next(world, capsys) -> None:  # noqa: F811
    with_host(world)
    assert run(world, "export-rdb") == 0
    out = capsys.readouterr().out
    assert f"pulumi config set spot-redis:cacheRestoreRdb s3://{BUCKET}/rdb/" in out
    assert "pulumi config set spot-redis:engine valkey-serverless" in out


def test_a_second_export_uses_the_bucket_and_a_new_key(world, capsys) -> None:  # noqa: F811
    with_host(world)
    assert run(world, "export-rdb", "--json") == 0
    capsys.readouterr()
    assert run(world, "export-rdb", "--json", "--bucket", BUCKET) == 0
    assert json.loads(capsys.readouterr().out)["made-bucket"] is False


def test_without_a_running_host_nothing_is_made(world, capsys) -> None:  # noqa: F811
    assert run(world, "export-rdb") == 1
    assert "has no running host" in capsys.readouterr().err
    assert world["session"].client("s3").list_buckets()["Buckets"] == []


def test_a_failed_save_is_one_line_with_the_hosts_reason(world, capsys) -> None:  # noqa: F811
    with_host(world, body=None, status="Failed", error="x\nspot-redis export-rdb: BGSAVE failed (err)")
    assert run(world, "export-rdb") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BGSAVE failed (err)" in err and "Failed" in err


def test_an_upload_that_is_not_an_rdb_file_is_refused(world, capsys) -> None:  # noqa: F811
    with_host(world, body=b"<html>oops</html>")
    assert run(world, "export-rdb") == 1
    assert "is not an RDB file" in capsys.readouterr().err


# --- the host's script, run in bash -----------------------------------------------------------------------------

FAKE_REDIS_CLI = r"""#!/bin/bash
# A stand-in redis-cli: LASTSAVE moves when BGSAVE runs; INFO persistence says the save went as $SAVE_STATUS says.
state="$FAKE_STATE"
echo "$* auth=${REDISCLI_AUTH:-none}" >> "$state/calls"
case "$*" in
  *LASTSAVE) cat "$state/lastsave" ;;
  *"BGSAVE SCHEDULE") echo $(( $(cat "$state/lastsave") + 1 )) > "$state/lastsave"; echo "Background saving started" ;;
  *"INFO persistence") printf 'rdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:%s\r\n' "$SAVE_STATUS" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (
        f"http://127.0.0.1:{server.server_address[1]}/rdb/x.rdb?X-Amz-Signature=abc&X-Amz-Expires=3600",
        (_Receiver.received),
    )
    server.shutdown()


def run_script(tmp_path: Path, url: str, save_status: str = "ok") -> subprocess.CompletedProcess:
    bin_dir, data, state = tmp_path / "bin", tmp_path / "data", tmp_path / "state"
    for folder in (bin_dir, data, state):
        folder.mkdir()
    (bin_dir / "redis-cli").write_text(FAKE_REDIS_CLI)
    (bin_dir / "redis-cli").chmod(0o755)
    (state / "lastsave").write_text("1000\n")
    (data / "dump.rdb").write_bytes(RDB)
    credentials = tmp_path / "admin.env"
    credentials.write_text("REDIS_ADMIN_USER=admin\nREDISCLI_AUTH='s3cret pass'\n")
    script = export_rdb.host_script(url, credentials_file=str(credentials), data_dir=str(data), save_timeout_s=5)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_STATE": str(state)}
    environment["SAVE_STATUS"] = save_status
    return subprocess.run(["bash", "-c", script], env=environment, capture_output=True, text=True, timeout=60)


def test_the_host_script_saves_then_uploads_the_rdb_file(tmp_path, receiver) -> None:
    url, received = receiver
    done = run_script(tmp_path, url)
    assert done.returncode == 0, done.stderr
    assert f"uploaded {len(RDB)} bytes" in done.stdout
    ((path, body),) = received
    assert body == RDB and urllib.parse.urlsplit(path).path == "/rdb/x.rdb" and "X-Amz-Signature=abc" in path
    calls = (tmp_path / "state" / "calls").read_text().splitlines()
    assert "--user admin BGSAVE SCHEDULE auth=s3cret pass" in " ".join(calls), "the password only in the environment"
    assert all("s3cret" not in call.split(" auth=")[0] for call in calls)
    assert calls.index(next(c for c in calls if "BGSAVE" in c)) < max(
        i for i, c in enumerate(calls) if c.startswith("--no-auth-warning --user admin LASTSAVE")
    ), "waits for LASTSAVE to move after the BGSAVE"


def test_the_host_script_stops_when_the_save_failed(tmp_path, receiver) -> None:
    url, received = receiver
    done = run_script(tmp_path, url, save_status="err")
    assert done.returncode == 1
    assert "BGSAVE failed (rdb_last_bgsave_status: err)" in done.stderr
    assert received == []


def test_the_presigned_url_lets_the_put_through(monkeypatch) -> None:
    for name, value in support.FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.Session(region_name=support.REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": support.REGION})
        url = export_rdb.presigned_put(session, support.REGION, "bkt", "rdb/k.rdb")
        assert "X-Amz-Signature=" in url and "AWSAccessKeyId" not in url, "SigV4, not SigV2"
        assert requests.put(url, data=RDB, timeout=10).status_code == 200
        assert s3.get_object(Bucket="bkt", Key="rdb/k.rdb")["Body"].read() == RDB


def test_host_commands_say_a_serverless_stack_has_no_host(world, capsys) -> None:  # noqa: F811
    world["stack"].outputs["engine"] = "valkey-serverless"
    for command in ("status", "start", "export-rdb"):
        assert run(world, command) == 1
        assert "runs the valkey-serverless engine: it has no host" in capsys.readouterr().err, command
