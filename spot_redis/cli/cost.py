"""`spot-redis cost`: what this stack's configuration costs a month, line by line, and what the team would pay instead.

Reads Pulumi.<stack>.yaml as plain YAML (no Pulumi, no AWS) and the dated price file spot_redis/cost/prices.json;
`--live` asks AWS for EC2 on-demand (Price List API) and Spot prices instead of the file's. The arithmetic is
spot_redis/cost/model.py; this module only reads the arguments and prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.config import ConfigError
from spot_redis.cost import render, serverless
from spot_redis.cost.hours import average_month_hours, month_hours, parse_month
from spot_redis.cost.model import Assumptions, estimate
from spot_redis.cost.prices import PRICE_FILE, FilePrices, LivePrices, PriceError
from spot_redis.cost.serverless import Workload
from spot_redis.cost.stack_file import StackFileError, load_stack_file

DEFAULT_RATE = 155.0  # JPY per USD, assumed; --rate changes it
PROJECT_DIR = Path(__file__).resolve().parents[2]


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cost",
        help="the monthly cost of this stack's configuration, and of the alternatives",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="the stack file, Pulumi.<stack>.yaml (default: the stack's)")
    parser.add_argument("--month", help="count the hours of this month, YYYY-MM (default: an average month)")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help=f"units of --currency per USD ({DEFAULT_RATE:g})"
    )
    parser.add_argument("--currency", default="JPY", help="the second currency's code (JPY)")
    parser.add_argument(
        "--snapshot-change-rate",
        type=float,
        default=Assumptions.snapshot_change_rate,
        help="share of the data volume changed per running day, 0..1 (0.10)",
    )
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    parser.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    parser.add_argument("--prices", type=Path, default=PRICE_FILE, help="the price file (spot_redis/cost/prices.json)")
    parser.add_argument("--live", action="store_true", help="EC2 on-demand and Spot prices from AWS (credentials)")
    add_serverless_arguments(parser)


def add_serverless_arguments(parser: argparse.ArgumentParser) -> None:
    """What the valkey-serverless engine's price depends on besides its limits (spot_redis/cost/serverless.py)."""
    group = parser.add_argument_group("the valkey-serverless engine (spot-redis:engine)")
    group.add_argument(
        "--dataset-gb",
        type=float,
        default=Workload.dataset_gb,
        help="the dataset, measured (the host's INFO memory used_memory_dataset; the cache's BytesUsedForCache): GB",
    )
    group.add_argument(
        "--requests-per-second", type=float, default=Workload.requests_per_second, help="the month's average (0)"
    )
    group.add_argument(
        "--ecpu-per-request", type=float, default=Workload.ecpu_per_request, help="1 for commands of up to 1 KB (1)"
    )


def run(args: argparse.Namespace, *, aws_clients: Any = None, now: datetime.datetime | None = None) -> int:
    try:
        print(report(args, aws_clients=aws_clients, now=now), end="")
    except (ConfigError, StackFileError, PriceError, ValueError) as error:
        print(f"spot-redis cost: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:  # --live: no credentials, no network, a refused call
        from spot_redis.cli.main import describe_error

        print(f"spot-redis cost: {describe_error(error)}", file=sys.stderr)
        return 1
    return 0


def report(args: argparse.Namespace, *, aws_clients: Any = None, now: datetime.datetime | None = None) -> str:
    if args.rate <= 0:
        raise ValueError(f"--rate {args.rate:g} must be more than 0")
    if not 0 <= args.snapshot_change_rate <= 1:
        raise ValueError(f"--snapshot-change-rate {args.snapshot_change_rate:g} must be between 0 and 1")
    config_path = args.config or default_stack_file(getattr(args, "stack", None))
    config = load_stack_file(config_path)
    source: Any = FilePrices(args.prices)
    if args.live:
        pricing, ec2 = aws_clients or _aws_clients(config.region)
        source = LivePrices(
            source,
            pricing_client=pricing,
            ec2_client=ec2,
            availability_zone=config.availability_zone,
            instance_types=config.instance_types[:1],
        )
    schedule = config.working_hours
    if args.month:
        year, month = parse_month(args.month)
        hours = month_hours(schedule, year, month)
        basis = f"{args.month}"
    else:
        hours = average_month_hours(schedule)
        basis = "average month" if schedule else "always on: 730 h"
    if schedule:
        days = _days_text(schedule.days)
        basis = f"{days} {schedule.start:%H:%M}-{schedule.end:%H:%M} {schedule.time_zone}, {basis}"
        if not args.month:
            basis += " of 2027-2030, DST included"
    if config.serverless:
        result = serverless_estimate(args, config, source)
    else:
        result = estimate(
            config,
            source.region(config.region),
            source.specs(),
            hours,
            basis,
            Assumptions(snapshot_change_rate=args.snapshot_change_rate),
        )
    currency = args.currency.upper()
    if args.format == "json":
        document = render.infracost_json(
            result,
            args.rate,
            currency,
            source.label,
            str(config_path),
            now or datetime.datetime.now(datetime.UTC),
        )
        return json.dumps(document, indent=2) + "\n"
    if args.format == "markdown":
        return render.markdown(result, args.rate, currency, source.label)
    return render.text(result, args.rate, currency, source.label)


def serverless_estimate(args: argparse.Namespace, config: Any, source: Any) -> Any:
    """The valkey-serverless engine's estimate: its limits from the stack file, the workload from the arguments."""
    workload = Workload(
        dataset_gb=getattr(args, "dataset_gb", Workload.dataset_gb),
        requests_per_second=getattr(args, "requests_per_second", Workload.requests_per_second),
        ecpu_per_request=getattr(args, "ecpu_per_request", Workload.ecpu_per_request),
    )
    return serverless.estimate(config, source.region(config.region), source.specs(), workload)


def default_stack_file(stack: str | None) -> Path:
    """--stack's file, else PULUMI_STACK's, else the project's only Pulumi.<stack>.yaml."""
    stack = stack or os.environ.get("PULUMI_STACK")
    if stack:
        return PROJECT_DIR / f"Pulumi.{stack}.yaml"
    files = sorted(path for path in PROJECT_DIR.glob("Pulumi.*.yaml") if path.name != "Pulumi.example.yaml")
    if len(files) == 1:
        return files[0]
    raise StackFileError("name the stack file: --config Pulumi.<stack>.yaml (e.g. --config Pulumi.example.yaml)")


def _days_text(days: tuple[int, ...]) -> str:
    """(1, 2, 3, 4, 5) -> 'Mon-Fri'; (1, 3, 5) -> 'Mon,Wed,Fri'."""
    names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(names[r[0] - 1] if len(r) == 1 else f"{names[r[0] - 1]}-{names[r[-1] - 1]}" for r in runs)


def _aws_clients(region: str) -> tuple[Any, Any]:
    import boto3

    # The Price List API answers in us-east-1 (and a few others), for every region.
    return boto3.client("pricing", region_name="us-east-1"), boto3.client("ec2", region_name=region)


def main(argv: list[str] | None = None) -> int:
    """This subcommand alone (`python -m spot_redis.cli.cost`), as `spot-redis cost` runs it."""
    parser = argparse.ArgumentParser(prog="spot-redis cost", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
