"""The private bucket that holds the Ansible bundle the host runs at boot, and the bundle itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.bootstrap import bundle_files
from infra.component import Concern
from infra.config import StackConfig

BUNDLE_PREFIX = "bundles/"


def bundle_key(files: dict[str, Path]) -> str:
    """Content-addressed: a change to ansible/ gives a new key, so new user data and a new launch template version."""
    digest = hashlib.sha256()
    for archive_path in sorted(files):
        digest.update(archive_path.encode())
        digest.update(b"\0")
        digest.update(files[archive_path].read_bytes())
        digest.update(b"\0")
    return f"{BUNDLE_PREFIX}ansible-{digest.hexdigest()[:16]}.zip"


class AnsibleBundle(Concern):
    def __init__(self, name: str, config: StackConfig, repo_root: Path, opts: pulumi.ResourceOptions | None = None):
        super().__init__("AnsibleBundle", name, config, opts)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"spot-redis-{config.stack}-",
            force_destroy=True,  # it holds only bundles, rebuilt from the repository by every `pulumi up`
            tags=self.tags("bundle"),
            opts=self.child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-private",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self.child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=self.child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                {"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}, "bucket_key_enabled": True}
            ],
            opts=self.child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=self.bucket.id, versioning_configuration={"status": "Enabled"}, opts=self.child
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(iam_documents.tls_only_bucket_policy),
            opts=self.child,
        )
        files = bundle_files(repo_root)
        self.key = bundle_key(files)
        self.object = aws.s3.BucketObjectv2(
            f"{name}-ansible",
            bucket=self.bucket.id,
            key=self.key,
            source=pulumi.AssetArchive({path: pulumi.FileAsset(str(file)) for path, file in files.items()}),
            content_type="application/zip",
            tags=self.tags("ansible-bundle"),
            opts=self.child,
        )
        self.register_outputs({"bucket": self.bucket.id, "key": self.key})
