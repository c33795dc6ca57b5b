"""`spot-redis`: the argument parser, the dispatch and the one place errors become one line and exit 1.

A subcommand is a module with ``register(subparsers)``: it adds its parser and sets ``func``, called with an
:class:`Invocation` (when its first parameter is named ``invocation``; else with the parsed args) and returning a
:class:`Result` (``data`` for ``--json``, ``lines`` for people) or an exit code (having printed for itself).
main adds the common options (--stack, --outputs, --region, --json) to every subcommand lacking them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The command is installed editable from a checkout (the Makefile's `pip install -e .`); some commands read the
# stack's configuration with infra/'s pure modules (infra.config, infra.schedule), which stay beside spot_redis/ in
# that checkout rather than being installed. Appended, so an installed module of the same name would win; before
# the imports below, which need it.
CHECKOUT = Path(__file__).resolve().parents[2]
if (CHECKOUT / "infra" / "config.py").is_file() and str(CHECKOUT) not in sys.path:
    sys.path.append(str(CHECKOUT))

from spot_redis.cli.context import CliError, Stack, load_stack  # noqa: E402

PROG = "spot-redis"
COMMANDS = ("status", "start", "stop", "warmup", "connect", "drill", "cost", "export_rdb")


@dataclass
class Result:
    data: dict[str, Any]
    lines: list[str]
    code: int = 0


@dataclass
class Tools:
    """What the commands take from the world besides AWS; tests replace them."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    run: Callable[..., Any] = subprocess.run
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class Invocation:
    args: argparse.Namespace
    tools: Tools
    loader: Callable[[argparse.Namespace], Stack]
    _stack: Stack | None = None

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            self._stack = self.loader(self.args)
        return self._stack


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line and exit 1, as every other error (argparse's own is usage and exit 2)."""

    def error(self, message: str) -> Any:
        self.exit(1, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _add_common(parser: argparse.ArgumentParser) -> None:
    known = parser._option_string_actions
    if "--stack" not in known:
        parser.add_argument("--stack", help="the Pulumi stack (default: the selected one, else PULUMI_STACK)")
    if "--outputs" not in known:
        parser.add_argument(
            "--outputs", type=Path, help="the stack's outputs from a file (`pulumi stack output --json > FILE`)"
        )
    if "--region" not in known:
        parser.add_argument("--region", help="AWS region (default: the stack's aws:region)")
    if "--json" not in known:
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Operate a deployed spot-redis stack with your own AWS credentials.",
        epilog="Run `spot-redis COMMAND --help` for a command's options.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"spot_redis.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"spot_redis.cli.{name}":
                continue  # a command not written yet
            _register_broken(subparsers, name, error)  # the other commands still work; this one says why not
            continue
        module.register(subparsers)
    for subparser in subparsers.choices.values():
        _add_common(subparser)
    return parser


def _register_broken(subparsers: argparse._SubParsersAction, name: str, error: Exception) -> None:
    def fail(invocation: Invocation) -> Result:
        raise CliError(f"this command cannot run here: {error} (run it from the spot-redis checkout)")

    parser = subparsers.add_parser(name, help=f"(unavailable: {error})")
    parser.set_defaults(func=fail)


def describe_error(error: BaseException) -> str:
    """Any error as one line for the operator."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(error, CliError):
        return str(error)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: set AWS_PROFILE (or `aws sso login`, or AWS_ACCESS_KEY_ID...) and try again"
    if isinstance(error, NoRegionError):
        return "no AWS region: give --region, set aws:region in Pulumi.<stack>.yaml, or set AWS_REGION"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS: {error}"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code")
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"):
            return f"your AWS credentials were refused ({code}): log in again (e.g. `aws sso login`)"
        message = " ".join(str(details.get("Message") or "").split())
        return f"AWS refused {error.operation_name}: {code}: {message}"
    if isinstance(error, subprocess.TimeoutExpired):
        return f"`{' '.join(map(str, error.cmd))}` did not answer within {error.timeout:.0f} s"
    if isinstance(error, OSError):
        return f"{error.strerror or error}{': ' + str(error.filename) if error.filename else ''}"
    return f"unexpected {type(error).__name__}: {' '.join(str(error).split())}"


def main(
    argv: list[str] | None = None,
    *,
    tools: Tools | None = None,
    loader: Callable[[argparse.Namespace], Stack] = load_stack,
) -> int:
    args = build_parser().parse_args(argv)
    invocation = Invocation(args=args, tools=tools or Tools(), loader=loader)
    try:
        # A command's func takes the Invocation (its first parameter is named so) or, as `cost` does, the parsed args.
        first = next(iter(inspect.signature(args.func).parameters), None)
        result = args.func(invocation) if first == "invocation" else args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        print(f"{PROG} {args.command}: {describe_error(error)}", file=sys.stderr)
        return 1
    if isinstance(result, int):  # a command that printed for itself (drill)
        return result
    if args.json:
        print(json.dumps(result.data, indent=2, default=str))
    else:
        for line in result.lines:
            print(line)
    return result.code


if __name__ == "__main__":
    sys.exit(main())
