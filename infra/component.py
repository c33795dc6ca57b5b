"""What every ComponentResource of the program shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pulumi

from infra.config import NAMESPACE, StackConfig

T = TypeVar("T")


def resolved(build: Callable[..., T], /, **inputs: pulumi.Input[Any]) -> pulumi.Output[T]:
    """`build(**inputs)` once every input is known: the pure builders (IAM documents, user data, container
    definitions) take plain values by name."""
    return pulumi.Output.all(**inputs).apply(lambda values: build(**values))


class Concern(pulumi.ComponentResource):
    """One concern of the stack (network, storage, host...): its resources are its children and carry the stack tag."""

    def __init__(self, kind: str, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{NAMESPACE}:stack:{kind}", name, None, opts)
        self.config = config

    @property
    def child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def tags(self, name: str | None = None, **extra: str) -> dict[str, str]:
        """The stack tag, a readable Name, and any tag of the caller's."""
        tags = dict(self.config.tag)
        if name:
            tags["Name"] = self.physical_name(name)
        tags.update(extra)
        return tags

    def physical_name(self, name: str) -> str:
        return f"{NAMESPACE}-{self.config.stack}-{name}"
