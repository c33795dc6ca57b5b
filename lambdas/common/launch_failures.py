"""Why the Auto Scaling group could not launch the host: the one place that says which launch failures are a lack of
Spot capacity (the on-demand fallback switches the group) and which need a person (nothing switches).

The input is ``detail.StatusMessage`` of "EC2 Instance Launch Unsuccessful", the scaling activity's status message:
``Could not launch Spot Instances. <EC2 error code> - <EC2's message>. Launching EC2 instance failed.``, or EC2's
message alone (``There is no Spot capacity available that matches your request. Launching EC2 instance failed.``, as
AWS's troubleshooting guide lists it). tests/unit/lambdas/test_capacity.py classifies real messages of each kind, each
with where it was seen.

- No Spot capacity: the EC2 error codes InsufficientInstanceCapacity, UnfulfillableCapacity (EC2's error reference:
  not enough spare capacity for the Spot request) and SpotMaxPriceTooLow (the Spot price rose above the maximum,
  which is the on-demand price when the launch template sets none: Spot costs more than on-demand), or their texts.
  An on-demand launch that fails for capacity ("Could not launch On-Demand Instances. InsufficientInstanceCapacity")
  is a group already on on-demand: switching cannot help.
- Anything else needs a person: a missing AMI, security group, key pair or subnet, an unsupported configuration,
  permissions, and quotas. A quota is not a lack of capacity even when its text says "capacity" ("You have requested
  more vCPU capacity than your current vCPU limit"), nor is "Max spot instance count exceeded" (the account's Spot
  quota): they stay until someone raises them.
"""

from __future__ import annotations

import re
from enum import StrEnum

SPOT_CAPACITY_CODES = ("InsufficientInstanceCapacity", "UnfulfillableCapacity", "SpotMaxPriceTooLow")
SPOT_CAPACITY_TEXTS = (
    "There is no Spot capacity available",
    "There is no capacity available that matches your request",
    "We currently do not have sufficient",
    "lower than the minimum required Spot request fulfillment price",
)
ON_DEMAND_LAUNCH = "Could not launch On-Demand Instances"

_CODES = re.compile(r"\b(" + "|".join(SPOT_CAPACITY_CODES) + r")\b")


class LaunchFailure(StrEnum):
    SPOT_CAPACITY = "spot-capacity"
    """EC2 has no Spot capacity for the group's types in its zone (or Spot costs more than on-demand)."""
    ON_DEMAND_CAPACITY = "on-demand-capacity"
    """The group launches on-demand already, and EC2 has no on-demand capacity either: only waiting (or more instance
    types) helps."""
    NEEDS_A_PERSON = "needs-a-person"
    """Configuration, permissions or a quota: every retry fails the same way until someone fixes it."""


def classify(status_message: str | None) -> LaunchFailure:
    """What kind of launch failure ``status_message`` describes (an empty or missing one needs a person)."""
    message = status_message or ""
    lacks_capacity = bool(_CODES.search(message)) or any(text in message for text in SPOT_CAPACITY_TEXTS)
    if not lacks_capacity:
        return LaunchFailure.NEEDS_A_PERSON
    return LaunchFailure.ON_DEMAND_CAPACITY if message.startswith(ON_DEMAND_LAUNCH) else LaunchFailure.SPOT_CAPACITY
