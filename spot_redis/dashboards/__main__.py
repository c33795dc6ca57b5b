"""`python -m spot_redis.dashboards [--out dashboards]`: write every dashboard's JSON (make dashboards)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spot_redis.dashboards.catalog import write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spot_redis.dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("dashboards"), help="folder to write (default dashboards)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
