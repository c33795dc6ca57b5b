"""What every subcommand needs: which stack, its outputs and config, the region and the AWS clients.

The stack: --stack, else the selected Pulumi stack (`pulumi stack --show-name`), else PULUMI_STACK. Its outputs:
--outputs FILE (`pulumi stack output --json`), else the Pulumi CLI. Its config: Pulumi.<stack>.yaml's `spot-redis:`
and `aws:` keys, read as plain YAML (no Pulumi needed). AWS: the operator's own credentials (boto3's default chain),
in --region, else the config's aws:region, else the profile's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import NAMESPACE, VALKEY_SERVERLESS

PULUMI_TIMEOUT_S = 60


class CliError(Exception):
    """Something the operator must fix; the message is one line that says what."""


def project_dir(start: Path | None = None) -> Path:
    """The Pulumi project: the nearest folder holding Pulumi.yaml from the working directory up, else this checkout."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[2]


Runner = Callable[[list[str], Path], subprocess.CompletedProcess]


def run_pulumi(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_S, check=False)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0].removeprefix("error: ") if lines else "no message"


def choose_stack(given: str | None, environ: dict[str, str], cwd: Path, runner: Runner = run_pulumi) -> str:
    if given:
        return given
    if shutil.which("pulumi"):
        done = runner(["pulumi", "stack", "--show-name"], cwd)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    if environ.get("PULUMI_STACK"):
        return environ["PULUMI_STACK"]
    raise CliError(
        "which stack? give --stack NAME, select one with `pulumi stack select NAME`, or set PULUMI_STACK=NAME"
    )


def read_outputs_file(path: Path) -> dict[str, Any]:
    try:
        outputs = json.loads(Path(path).read_text())
    except OSError as error:
        raise CliError(f"cannot read --outputs {path}: {error.strerror}") from None
    except ValueError:
        raise CliError(f"--outputs {path} is not JSON (write it with `pulumi stack output --json`)") from None
    if not isinstance(outputs, dict):
        raise CliError(f"--outputs {path} is not a JSON object (write it with `pulumi stack output --json`)")
    return outputs


def pulumi_outputs(stack: str, cwd: Path, runner: Runner = run_pulumi) -> dict[str, Any]:
    if not shutil.which("pulumi"):
        raise CliError(
            "cannot read the stack's outputs: the pulumi CLI is not installed; "
            "give --outputs FILE (written by `pulumi stack output --json`)"
        )
    done = runner(["pulumi", "stack", "output", "--json", "--stack", stack], cwd)
    if done.returncode != 0:
        raise CliError(f"no outputs for stack {stack!r}: {_first_line(done.stderr)}")
    try:
        outputs = json.loads(done.stdout)
    except ValueError:
        raise CliError(f"`pulumi stack output --json --stack {stack}` did not answer JSON") from None
    return outputs if isinstance(outputs, dict) else {}


def read_stack_config(stack: str, folder: Path) -> dict[str, Any]:
    """Pulumi.<stack>.yaml's `config:` keys (namespace kept: `aws:region`, `spot-redis:workingHours`); {} without
    the file (an operator may have outputs and credentials only)."""
    path = folder / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CliError(f"cannot read {path.name}: {str(error).splitlines()[0]}") from None
    config = document.get("config") if isinstance(document, dict) else None
    return dict(config) if isinstance(config, dict) else {}


@dataclass
class Stack:
    """One stack as the subcommands see it. ``session`` is a boto3 Session (tests hand in one under moto)."""

    name: str
    outputs: dict[str, Any]
    config: dict[str, Any]
    region: str | None
    session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self.session is None:
                import boto3

                self.session = boto3.Session(region_name=self.region)
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def output(self, name: str) -> Any:
        value = self.outputs.get(name)
        if value in (None, ""):
            raise CliError(f"stack {self.name!r} has no output {name!r} (is it deployed? `pulumi up`)")
        return value

    def setting(self, key: str, default: Any = None) -> Any:
        return self.config.get(f"{NAMESPACE}:{key}", default)

    @property
    def group(self) -> str:
        self._needs_a_host()
        return str(self.output("asgName"))

    @property
    def volume_id(self) -> str:
        self._needs_a_host()
        return str(self.output("dataVolumeId"))

    def _needs_a_host(self) -> None:
        """A valkey-serverless stack (its `engine` output) has no host, group or data volume to act on."""
        if self.outputs.get("engine") == VALKEY_SERVERLESS:
            raise CliError(
                f"stack {self.name!r} runs the valkey-serverless engine: it has no host (this command is for "
                "spot-host stacks; the cache is `pulumi stack output cacheEndpoint`)"
            )

    def parameter(self, purpose: str) -> str:
        names = self.outputs.get("parameterNames")
        if isinstance(names, dict) and names.get(purpose):
            return str(names[purpose])
        return f"/{NAMESPACE}/{self.name}/{purpose.replace('redis-', 'redis/', 1)}"


def load_stack(args: Any, environ: dict[str, str] | None = None, runner: Runner = run_pulumi) -> Stack:
    environ = dict(os.environ) if environ is None else environ
    folder = project_dir()
    name = choose_stack(getattr(args, "stack", None), environ, folder, runner)
    outputs_file = getattr(args, "outputs", None)
    outputs = read_outputs_file(outputs_file) if outputs_file else pulumi_outputs(name, folder, runner)
    if not outputs:
        raise CliError(f"stack {name!r} has no outputs: deploy it first (`pulumi up`)")
    config = read_stack_config(name, folder)
    region = getattr(args, "region", None) or config.get("aws:region") or None
    return Stack(name=name, outputs=outputs, config=config, region=region)
