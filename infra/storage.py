"""The persistent data volume, and the DLM policy that snapshots it during working hours."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.component import Concern
from infra.config import NAMESPACE, StackConfig
from infra.schedule import snapshot_crons

DLM_SERVICE_POLICY = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
VOLUME_TAG = f"{NAMESPACE}:volume"
SNAPSHOT_TAG = f"{NAMESPACE}:snapshot-of"


def snapshot_schedules(config: StackConfig) -> list[dict]:
    """One DLM schedule per UTC cron. Every snapshot gets the volume's tags (copy_tags: the stack tag among them) plus
    the one tag the volume has not: tags_to_add must not repeat a key that copy_tags already copies."""
    return [
        {
            "name": f"working-hours-{index}",
            "create_rule": {"cron_expression": cron},
            "retain_rule": {"count": config.snapshot_retain_count},
            "copy_tags": True,
            "tags_to_add": {SNAPSHOT_TAG: data_volume_label(config)},
        }
        for index, cron in enumerate(snapshot_crons(config.working_hours, config.snapshot_every_hours))
    ]


def data_volume_label(config: StackConfig) -> str:
    return f"{config.stack}-data"


class DataVolume(Concern):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("DataVolume", name, config, opts)
        label = data_volume_label(config)
        self.volume = aws.ebs.Volume(
            f"{name}-volume",
            availability_zone=config.availability_zone,
            size=config.data_volume_size_gib,
            type="gp3",
            encrypted=True,
            final_snapshot=True,  # `pulumi destroy` leaves a last snapshot: nothing is lost by a teardown
            tags=self.tags("data", **{VOLUME_TAG: label}),
            opts=pulumi.ResourceOptions(parent=self, protect=False),
        )
        self.dlm_role = aws.iam.Role(
            f"{name}-dlm",
            assume_role_policy=iam_documents.assume_role_policy("dlm.amazonaws.com"),
            description="DLM snapshots of the spot-redis data volume",
            tags=self.tags("dlm"),
            opts=self.child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-dlm-service", role=self.dlm_role.name, policy_arn=DLM_SERVICE_POLICY, opts=self.child
        )
        self.snapshots = aws.dlm.LifecyclePolicy(
            f"{name}-snapshots",
            description=f"{NAMESPACE} {config.stack} data volume snapshots during working hours",  # DLM: [0-9A-Za-z _-]
            execution_role_arn=self.dlm_role.arn,
            state="ENABLED",
            policy_details={
                "resource_types": ["VOLUME"],
                "target_tags": {VOLUME_TAG: label},
                "schedules": snapshot_schedules(config),
            },
            tags=self.tags("snapshots"),
            opts=self.child,
        )
        self.register_outputs({"volume_id": self.volume.id, "snapshot_policy_arn": self.snapshots.arn})
