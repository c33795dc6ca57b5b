"""A Pulumi.<stack>.yaml read without Pulumi: its `spot-redis:` keys, validated by infra/config.py's parse_config."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.config import NAMESPACE, StackConfig, parse_config


class StackFileError(ValueError):
    """The stack file cannot be read; the message names it."""


def load_stack_file(path: Path) -> StackConfig:
    """The stack's configuration as `pulumi up` would check it (secrets are not needed to price it).

    The stack's name is the file's: Pulumi.staging.yaml is the stack `staging`. A bad value raises ConfigError, whose
    message starts with the key's full name, as `pulumi preview` would say it.
    """
    path = Path(path)
    name = path.name
    if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))) or name.count(".") < 2:
        raise StackFileError(f"{path}: expected a stack file named Pulumi.<stack>.yaml")
    stack = name[len("Pulumi.") :].rsplit(".", 1)[0]
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StackFileError(f"{path}: no such stack file") from None
    except (OSError, yaml.YAMLError) as error:
        raise StackFileError(f"{path}: cannot be read as YAML ({str(error).splitlines()[0]})") from None
    config = (document or {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: has no `config:` mapping")
    return stack_config(config, stack)


def stack_config(config: dict, stack: str) -> StackConfig:
    """A stack file's `config:` mapping (keys with their namespace: `aws:region`, `spot-redis:vpcId`), checked."""
    prefix = f"{NAMESPACE}:"
    values = {key[len(prefix) :]: value for key, value in config.items() if str(key).startswith(prefix)}
    region = config.get("aws:region")
    return parse_config(values, stack=stack, region=region if isinstance(region, str) else None)
