"""`spot-redis drill`: the interruption drill against the stack (spot_redis/drill/aws.py), given its outputs."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="run the Spot interruption drill (FIS) against the stack",
        description="AWS terms: starts the stack's FIS experiment (output drillExperimentTemplateId) while a writer "
        "counts acknowledged writes; reports the loss window and the recovery time. Options after `--` go to "
        "`python -m spot_redis.drill.aws` (e.g. `spot-redis drill -- --resolve dns:redis.spot-redis.internal`).",
    )
    parser.add_argument("drill_args", nargs=argparse.REMAINDER, help="the drill's own options (--resolve is required)")
    parser.set_defaults(func=run)


def drill_argv(outputs_file: Path, region: str | None, extra: list[str]) -> list[str]:
    extra = extra[1:] if extra[:1] == ["--"] else extra
    return ["--stack-outputs", str(outputs_file), *(["--region", region] if region else []), *extra]


def run(invocation: Any) -> int:
    from spot_redis.drill import aws as drill

    stack = invocation.stack
    with tempfile.TemporaryDirectory(prefix="spot-redis-drill-") as folder:
        outputs_file = Path(folder) / "outputs.json"
        outputs_file.write_text(json.dumps(stack.outputs))
        return drill.main(drill_argv(outputs_file, stack.region, invocation.args.drill_args))
