"""The drill's writer: writes keys without pause through a name it re-resolves as an application would, and logs
every write Redis acknowledged, one JSON line each, flushed as it happens (a killed writer's log still counts).

    SPOT_REDIS_DRILL_PASSWORD=... python -m spot_redis.drill.writer --resolve cloudmap:NAMESPACE/SERVICE \\
        --prefix drill:RUN --log acks.jsonl --stop-file stop [--user app] [--port 6379]

--resolve is how the name is found: `cloudmap:NAMESPACE/SERVICE` (Cloud Map's DiscoverInstances, the API behind
the DNS name; --aws-endpoint-url and --region for a stand-in), `dns:NAME` (the resolver), or `fixed:ADDRESS` (a
port forwarded to one host). An answer is kept for the record's TTL (10 s, the stack's), as a client's resolver
does. The password comes from the environment only: it is never on a command line or in the log.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from spot_redis.drill import resp

NAME_TTL_S = 10.0  # the Cloud Map record's TTL (infra/platform.py)
WRITE_INTERVAL_S = 0.005  # about 200 writes a second: no gap a client would notice, a dataset the lab holds easily
COMMAND_TIMEOUT_S = 1.0
# The drill's keys expire: a drill against a team's Redis leaves nothing behind a day later.
DRILL_KEY_TTL_S = 24 * 3600
RETRY_PAUSE_S = 0.05
PASSWORD_ENV = "SPOT_REDIS_DRILL_PASSWORD"  # noqa: S105 - the variable's name, not a password

Resolve = Callable[[], "str | None"]


class CachedName:
    """A name's address, asked again only once the answer is older than the TTL (or when there was none)."""

    def __init__(self, resolve: Resolve, ttl_s: float = NAME_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.resolve = resolve
        self.ttl_s = ttl_s
        self.clock = clock
        self._address: str | None = None
        self._asked_at = float("-inf")

    def address(self) -> str | None:
        if self._address is None or self.clock() - self._asked_at >= self.ttl_s:
            try:
                self._address = self.resolve()
            except Exception:  # an API or resolver that does not answer: no address this time
                self._address = None
            self._asked_at = self.clock()
        return self._address


def cloudmap_resolver(namespace: str, service: str, region: str | None, endpoint_url: str | None) -> Resolve:
    import boto3
    from botocore.config import Config

    # DiscoverInstances is served on the data-plane host `data-servicediscovery...`: botocore prefixes the endpoint
    # with `data-`, which a stand-in's endpoint (an address) cannot take.
    config = Config(inject_host_prefix=endpoint_url is None, connect_timeout=1, read_timeout=2)
    client = boto3.client("servicediscovery", region_name=region, endpoint_url=endpoint_url, config=config)

    def resolve() -> str | None:
        found = client.discover_instances(NamespaceName=namespace, ServiceName=service, HealthStatus="ALL")
        addresses = [i["Attributes"].get("AWS_INSTANCE_IPV4") for i in found.get("Instances", [])]
        return next((a for a in addresses if a), None)

    return resolve


def dns_resolver(name: str, port: int) -> Resolve:
    return lambda: socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][4][0]


def resolver(spec: str, port: int, region: str | None = None, endpoint_url: str | None = None) -> Resolve:
    kind, _, value = spec.partition(":")
    if kind == "fixed" and value:
        return lambda: value
    if kind == "dns" and value:
        return dns_resolver(value, port)
    if kind == "cloudmap" and value.count("/") == 1 and all(value.split("/")):
        namespace, service = value.split("/")
        return cloudmap_resolver(namespace, service, region, endpoint_url)
    raise ValueError(f"--resolve {spec!r}: use cloudmap:NAMESPACE/SERVICE, dns:NAME or fixed:ADDRESS")


def write(
    name: CachedName,
    *,
    port: int,
    user: str,
    password: str,
    prefix: str,
    log: TextIO,
    should_stop: Callable[[], bool],
    interval_s: float = WRITE_INTERVAL_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """SET prefix:N N (expiring after a day) for N = 1, 2, ... until should_stop(); log {"seq", "at", "address"} for
    each "OK".

    A write without an answer (a refused or dropped connection, a timeout, an error reply) is not logged and is
    not tried again: its number is skipped. Returns the number of acknowledged writes.
    """
    seq = acked = 0
    connection, connected_to = None, None
    while not should_stop():
        address = name.address()
        if address is None:
            sleep(RETRY_PAUSE_S)
            continue
        if connection is None or connected_to != address:
            if connection is not None:
                connection.close()
            try:
                connection, connected_to = resp.login(address, port, user, password, COMMAND_TIMEOUT_S), address
            except (OSError, resp.RedisReplyError):
                connection = None
                sleep(RETRY_PAUSE_S)
                continue
        seq += 1
        try:
            reply = connection.command("SET", f"{prefix}:{seq}", seq, "EX", DRILL_KEY_TTL_S)
        except (OSError, resp.RedisReplyError):
            connection.close()
            connection = None
            sleep(RETRY_PAUSE_S)
            continue
        if reply == "OK":
            acked += 1
            log.write(json.dumps({"seq": seq, "at": round(clock(), 4), "address": address}) + "\n")
            log.flush()
        sleep(interval_s)
    if connection is not None:
        connection.close()
    return acked


def missing(connection: resp.Connection, prefix: str, seqs: Iterable[int], batch: int = 1000) -> set[int]:
    """The numbers among seqs whose key is not there (or holds something else)."""
    wanted = sorted(set(seqs))
    gone = set()
    for start in range(0, len(wanted), batch):
        chunk = wanted[start : start + batch]
        values = connection.command("MGET", *(f"{prefix}:{n}" for n in chunk))
        gone.update(n for n, value in zip(chunk, values, strict=True) if value != str(n).encode())
    return gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spot_redis.drill.writer", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--resolve", required=True, help="cloudmap:NAMESPACE/SERVICE, dns:NAME or fixed:ADDRESS")
    parser.add_argument("--prefix", required=True, help="the keys' prefix, e.g. drill:<run>")
    parser.add_argument("--log", type=Path, required=True, help="where acknowledged writes are logged (JSON lines)")
    parser.add_argument("--stop-file", type=Path, required=True, help="the writer stops once this file exists")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--user", default="app")
    parser.add_argument("--region")
    parser.add_argument("--aws-endpoint-url", help="a stand-in for the AWS API (cloudmap: only)")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        parser.error(f"set {PASSWORD_ENV} to the user's password")
    try:
        name = CachedName(resolver(args.resolve, args.port, args.region, args.aws_endpoint_url))
    except ValueError as error:
        parser.error(str(error))
    with args.log.open("a") as log:
        acked = write(name, port=args.port, user=args.user, password=password, prefix=args.prefix, log=log,
                      should_stop=args.stop_file.exists)  # fmt: skip
    print(f"writer: {acked} writes acknowledged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
