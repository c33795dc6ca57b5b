"""Where the team's tasks run and how they find Redis: ECS (Fargate Spot), Cloud Map, ECR, the warm-up task."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.component import Concern, resolved
from infra.config import REDIS_PORT, StackConfig
from infra.preflight import Namespace

TASK_EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
DNS_TTL_SECONDS = 10  # a replacement host's address is seen within seconds
WARMUP_CONTAINER = "warmup"
CNAME_INSTANCE_ID = "serverless-cache"


def redis_dns_config(namespace_id: pulumi.Input[str], *, cname: bool) -> dict:
    """redis.<namespace>'s records. The Spot host registers its address (A, MULTIVALUE). The serverless cache is a
    CNAME, which Cloud Map allows under its rules: a private or public DNS namespace, WEIGHTED routing (so one
    instance answers: the service holds only the cache's), no Route 53 health check, and the instance's
    AWS_INSTANCE_CNAME attribute as the target; the record type cannot change in place (switching engines replaces
    the service)."""
    if not cname:
        return {
            "namespace_id": namespace_id,
            "dns_records": [{"type": "A", "ttl": DNS_TTL_SECONDS}],
            "routing_policy": "MULTIVALUE",
        }
    return {
        "namespace_id": namespace_id,
        "dns_records": [{"type": "CNAME", "ttl": DNS_TTL_SECONDS}],
        "routing_policy": "WEIGHTED",
    }


def ecr_lifecycle_policy() -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "Untagged layers go after a week",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 7,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": "Keep the 20 newest images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20},
                    "action": {"type": "expire"},
                },
            ]
        }
    )


def warmup_container(config: StackConfig, *, image: str, password_parameter_arn: str, log_group: str) -> str:
    """The warm-up batch's container: it reaches Redis by name as the application user, the password from SSM. With
    the valkey-serverless engine it is also told that the name speaks TLS only (REDIS_TLS=true)."""
    environment = [
        {"name": "REDIS_HOST", "value": config.redis_dns_name},
        {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
        {"name": "REDIS_USER", "value": "app"},
    ]
    if config.serverless:
        environment.append({"name": "REDIS_TLS", "value": "true"})
    return json.dumps(
        [
            {
                "name": WARMUP_CONTAINER,
                "image": image,
                "essential": True,
                "readonlyRootFilesystem": True,
                "environment": environment,
                "secrets": [{"name": "REDIS_PASSWORD", "valueFrom": password_parameter_arn}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": config.region,
                        "awslogs-stream-prefix": WARMUP_CONTAINER,
                    },
                },
            }
        ]
    )


class Platform(Concern):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        app_password_parameter: aws.ssm.Parameter,
        account_id: pulumi.Input[str],
        existing_namespace: Namespace | None = None,
        redis_cname: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """redis_cname: what redis.<namespace> names (the serverless cache's endpoint); None: the Spot host registers
        its own address when it boots."""
        super().__init__("Platform", name, config, opts)
        self._service_discovery(name, existing_namespace)
        if redis_cname is not None:
            self._cname(name, redis_cname)
        self._cluster(name)
        self._warmup_task(name, app_password_parameter, account_id)
        self.register_outputs(
            {
                "cluster_arn": self.cluster.arn,
                "redis_service_id": self.redis_service.id,
                "repository_url": self.repository.repository_url,
                "warmup_task_definition_arn": self.task_definition.arn,
            }
        )

    def _service_discovery(self, name: str, existing_namespace: Namespace | None) -> None:
        self.namespace: Namespace | aws.servicediscovery.PrivateDnsNamespace = existing_namespace or (
            aws.servicediscovery.PrivateDnsNamespace(
                f"{name}-namespace",
                name=self.config.namespace,
                vpc=self.config.vpc_id,
                description=f"spot-redis {self.config.stack}: redis.{self.config.namespace}",
                tags=self.tags("namespace"),
                opts=self.child,
            )
        )
        self.redis_service = aws.servicediscovery.Service(
            f"{name}-redis",
            name="redis",
            dns_config=redis_dns_config(self.namespace.id, cname=self.config.serverless),
            force_destroy=True,  # the host's registration must not block a teardown
            tags=self.tags("redis-service"),
            opts=self.child,
        )

    def _cname(self, name: str, target: pulumi.Input[str]) -> None:
        """The one instance of a CNAME service: redis.<namespace> names the cache's endpoint."""
        self.redis_instance = aws.servicediscovery.Instance(
            f"{name}-redis-cache",
            instance_id=CNAME_INSTANCE_ID,
            service_id=self.redis_service.id,
            attributes={"AWS_INSTANCE_CNAME": target},
            opts=self.child,
        )

    def _cluster(self, name: str) -> None:
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=self.physical_name("batch"),
            settings=[{"name": "containerInsights", "value": "disabled"}],
            tags=self.tags("batch"),
            opts=self.child,
        )
        aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=self.cluster.name,
            capacity_providers=["FARGATE_SPOT", "FARGATE"],
            default_capacity_provider_strategies=[{"capacity_provider": "FARGATE_SPOT", "weight": 1}],
            opts=self.child,
        )
        self.repository = aws.ecr.Repository(
            f"{name}-warmup-images",
            name=self.physical_name("warmup"),
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            tags=self.tags("warmup-images"),
            opts=self.child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-warmup-images-lifecycle",
            repository=self.repository.name,
            policy=ecr_lifecycle_policy(),
            opts=self.child,
        )

    def _warmup_task(self, name: str, app_password: aws.ssm.Parameter, account_id: pulumi.Input[str]) -> None:
        config = self.config
        self.task_log_group = aws.cloudwatch.LogGroup(
            f"{name}-warmup-logs",
            name=f"/spot-redis/{config.stack}/warmup",
            retention_in_days=config.log_retention_days,
            tags=self.tags("warmup-logs"),
            opts=self.child,
        )
        self.execution_role = aws.iam.Role(
            f"{name}-warmup-execution",
            assume_role_policy=iam_documents.assume_role_policy("ecs-tasks.amazonaws.com"),
            description="Pulls the warm-up image, writes its logs, reads the application's Redis password",
            tags=self.tags("warmup-execution"),
            opts=self.child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-warmup-execution-managed",
            role=self.execution_role.name,
            policy_arn=TASK_EXECUTION_POLICY,
            opts=self.child,
        )
        aws.iam.RolePolicy(
            f"{name}-warmup-execution-secrets",
            role=self.execution_role.id,
            policy=resolved(
                iam_documents.task_execution_policy,
                app_password_parameter_arn=app_password.arn,
                region=config.region,
                account_id=account_id,
            ),
            opts=self.child,
        )
        self.task_family = self.physical_name("warmup")
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-warmup-task",
            family=self.task_family,
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu="256",
            memory="512",
            # Fargate Spot runs X86_64 tasks only, whatever the host's architecture: the image must be amd64.
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=self.execution_role.arn,
            container_definitions=resolved(
                warmup_container,
                config=config,
                image=pulumi.Output.concat(self.repository.repository_url, ":", config.warmup_image_tag),
                password_parameter_arn=app_password.arn,
                log_group=self.task_log_group.name,
            ),
            tags=self.tags("warmup-task"),
            opts=self.child,
        )
