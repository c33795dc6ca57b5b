"""SSM SecureString parameters under /spot-redis/<stack>/: generated Redis passwords and the webhook URLs.

The host reads them at boot (never from user data); the warm-up task gets the application password from them.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.component import Concern
from infra.config import StackConfig, StackSecrets

# ACL users of the redis role; their passwords are generated here.
REDIS_USERS = ("admin", "app", "monitor")


def parameter_names(config: StackConfig) -> dict[str, str]:
    """Every parameter the stack keeps, by purpose; the host agent reads the same names
    (SECRET_PARAMETERS in spot_redis/agent/settings.py)."""
    prefix = config.parameter_prefix
    names = {f"redis-{user}-password": f"{prefix}/redis/{user}-password" for user in REDIS_USERS}
    names["slack-webhook-url"] = f"{prefix}/slack-webhook-url"
    names["heartbeat-url"] = f"{prefix}/heartbeat-url"
    return names


class Parameters(Concern):
    def __init__(
        self, name: str, config: StackConfig, secrets: StackSecrets, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("Parameters", name, config, opts)
        self.names = parameter_names(config)
        values = {
            f"redis-{user}-password": random.RandomPassword(
                f"{name}-redis-{user}", length=40, special=False, opts=self.child
            ).result
            for user in REDIS_USERS
        }
        values["slack-webhook-url"] = secrets.slack_webhook_url
        values["heartbeat-url"] = secrets.heartbeat_url
        self.parameters = {
            purpose: aws.ssm.Parameter(
                f"{name}-{purpose}",
                name=self.names[purpose],
                type="SecureString",
                value=pulumi.Output.secret(values[purpose]),
                description=f"spot-redis {config.stack}: {purpose}",
                tags=self.tags(purpose),
                opts=self.child,
            )
            for purpose in self.names
        }
        self.register_outputs({"parameter_names": self.names})

    @property
    def arns(self) -> pulumi.Output[list[str]]:
        return pulumi.Output.all(*(parameter.arn for parameter in self.parameters.values()))
