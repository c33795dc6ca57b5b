"""What is on Redis, before and after a drill, as the application user sees it (run where the writer runs).

    SPOT_REDIS_DRILL_PASSWORD=... python -m spot_redis.drill.check keys --address A --out keys.json
    SPOT_REDIS_DRILL_PASSWORD=... python -m spot_redis.drill.check missing --address A --prefix P \\
        --acks acks.jsonl --keys keys.json

`keys` keeps the name of every key without an expiry (a key with a TTL may rightly be gone later). `missing` prints
one JSON object: the acknowledged writes (numbers) and the kept keys that are not there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from spot_redis.drill import resp
from spot_redis.drill.report import read_acks
from spot_redis.drill.writer import PASSWORD_ENV, missing

TIMEOUT_S = 10.0
BATCH = 1000


def persistent_keys(connection: resp.Connection) -> list[str]:
    keys, cursor = [], b"0"
    while True:
        cursor, batch = connection.command("SCAN", cursor, "COUNT", BATCH)
        for key in batch:
            if connection.command("PTTL", key) == -1:
                keys.append(key.decode(errors="surrogateescape"))
        if cursor == b"0":
            return sorted(keys)


def absent_keys(connection: resp.Connection, keys: list[str]) -> list[str]:
    return [key for key in keys if connection.command("EXISTS", key) == 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spot_redis.drill.check", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("what", choices=("keys", "missing"))
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--user", default="app")
    parser.add_argument("--out", type=Path, help="keys: where the key names go")
    parser.add_argument("--prefix", help="missing: the writer's key prefix")
    parser.add_argument("--acks", type=Path, help="missing: the writer's log")
    parser.add_argument("--keys", type=Path, help="missing: the key names `keys` kept")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        parser.error(f"set {PASSWORD_ENV} to the user's password")
    connection = resp.login(args.address, args.port, args.user, password, TIMEOUT_S)
    try:
        if args.what == "keys":
            args.out.write_text(json.dumps(persistent_keys(connection)))
            return 0
        acked = [ack.seq for ack in read_acks(args.acks)]
        kept = json.loads(args.keys.read_text())
        lost = sorted(missing(connection, args.prefix, acked))
        print(json.dumps({"lost": lost, "keys_missing": absent_keys(connection, kept)}))
        return 0
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
