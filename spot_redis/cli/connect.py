"""`spot-redis connect`: a port forward to the host's Redis through SSM Session Manager, and the redis-cli line."""

from __future__ import annotations

import argparse
import shlex
import shutil
from typing import Any

from infra.config import REDIS_PORT
from spot_redis.cli import aws
from spot_redis.cli.context import CliError

DEFAULT_LOCAL_PORT = 16379
REDIS_USERS = ("app", "admin", "monitor")  # infra/parameters.py's, without importing Pulumi


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "connect",
        help="forward a local port to the host's Redis (SSM) and print the redis-cli line",
        description="AWS terms: `aws ssm start-session --document-name AWS-StartPortForwardingSession` to the "
        "running host. Needs the AWS CLI and its Session Manager plugin. The Redis password is read from SSM "
        "and never printed unless --show-password.",
    )
    parser.add_argument("--local-port", type=int, default=DEFAULT_LOCAL_PORT, help="local port (default 16379)")
    parser.add_argument("--user", default="app", choices=REDIS_USERS, help="Redis user (default app)")
    parser.add_argument("--print-only", action="store_true", help="print the commands, start nothing")
    parser.add_argument("--show-password", action="store_true", help="put the password in the printed redis-cli line")
    parser.set_defaults(func=run)


def session_argv(instance_id: str, local_port: int, region: str | None = None) -> list[str]:
    argv = [
        "aws",
        "ssm",
        "start-session",
        "--target",
        instance_id,
        "--document-name",
        "AWS-StartPortForwardingSession",
        "--parameters",
        f"portNumber={REDIS_PORT},localPortNumber={local_port}",
    ]
    return [*argv, "--region", region] if region else argv


def redis_cli_line(local_port: int, user: str, parameter: str, password: str | None = None) -> str:
    """The client line: the password itself only when asked for; else a command substitution that reads it from SSM
    into redis-cli's environment, so that it is never printed."""
    if password is not None:
        auth = shlex.quote(password)
    else:
        read = ["aws", "ssm", "get-parameter", "--with-decryption", "--name", parameter, "--query",
                "Parameter.Value", "--output", "text"]  # fmt: skip
        auth = f'"$({shlex.join(read)})"'
    return f"REDISCLI_AUTH={auth} redis-cli -h 127.0.0.1 -p {local_port} --user {user}"


def run(invocation: Any) -> Any:
    from spot_redis.cli.main import Result

    args, stack, tools = invocation.args, invocation.stack, invocation.tools
    if not 1 <= args.local_port <= 65535:
        raise CliError(f"--local-port {args.local_port} is not a port (1 to 65535)")
    instance = aws.running_host(stack)
    argv = session_argv(instance["InstanceId"], args.local_port, stack.region)
    parameter = stack.parameter(f"redis-{args.user}-password")
    password = None
    if args.show_password:
        password = stack.client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    cli_line = redis_cli_line(args.local_port, args.user, parameter, password)
    data = {
        "instance-id": instance["InstanceId"],
        "session": argv,
        "redis-cli": cli_line,
        "password-parameter": parameter,
    }
    lines = [
        shlex.join(argv),
        f"then, in another terminal: {cli_line}",
    ]
    if args.print_only or args.json:
        return Result(data=data, lines=lines)
    if not shutil.which(argv[0], path=tools.environ.get("PATH")):
        raise CliError("the AWS CLI is not installed (with its Session Manager plugin); --print-only shows the command")
    for line in lines:
        print(line, flush=True)
    done = tools.run(argv, env=dict(tools.environ), check=False)  # the session needs no password: Redis's client does
    return Result(data=data, lines=[], code=0 if done.returncode == 0 else 1)
