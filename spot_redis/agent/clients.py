"""AWS clients for the agent: the region, the timeouts and (in the lab, or tests) an explicit endpoint, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Clients:
    """Lazily made boto3 clients. ``endpoint_url`` is None in production; boto3 1.26 ignores AWS_ENDPOINT_URL.

    ``attempts`` counts the first call too (botocore's total_max_attempts): a call takes at most about
    attempts x (connect_timeout_s + read_timeout_s), which is what the drain's budgets rely on.
    """

    region: str
    endpoint_url: str | None = None
    connect_timeout_s: float = 5
    read_timeout_s: float = 10
    attempts: int = 3
    _made: dict[str, Any] = field(default_factory=dict, repr=False)

    def get(self, service: str) -> Any:
        if service not in self._made:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=self.connect_timeout_s,
                read_timeout=self.read_timeout_s,
                retries={"total_max_attempts": self.attempts, "mode": "standard"},
            )
            self._made[service] = boto3.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )
        return self._made[service]

    @property
    def ec2(self) -> Any:
        return self.get("ec2")

    @property
    def autoscaling(self) -> Any:
        return self.get("autoscaling")

    @property
    def servicediscovery(self) -> Any:
        return self.get("servicediscovery")

    @property
    def events(self) -> Any:
        return self.get("events")

    @property
    def ssm(self) -> Any:
        return self.get("ssm")
