"""The lab's stand-in for the EC2 instance metadata service (IMDSv2), on the lab bridge.

    python3 lab/imds.py --listen=10.213.37.1:8169 --state-dir=.lab/imds

IMDSv2 as EC2 (and aws/amazon-ec2-metadata-mock) answers it: PUT /latest/api/token with a TTL header of 1..21600
seconds (else 400) returns a token; a GET without a valid, unexpired token is answered 401.

Hosts are told apart by their source address: <state dir>/<address>.json holds that host's metadata, read on every
request so that another process (the lab CLI, a test) can change it:

    {"instance-id": "i-...", "local-ipv4": "10.213.37.11", "mac": "02:...", "vpc-ipv4-cidr-blocks": ["10.213.37.0/24"],
     "region": "eu-west-1", "availability-zone": "eu-west-1a",
     "instance-action": {"action": "terminate", "time": "..."}, "rebalance": {"noticeTime": "..."}}   (both optional)

An unknown address or a missing key is answered 404, as EC2 answers a path with nothing at it (no notice yet).
A notice given as a string rather than an object is served as it is, so that tests can serve a malformed body.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path, not a secret
META_DATA = "/latest/meta-data/"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 - a header name, not a secret
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - likewise
MAX_TOKEN_TTL_S = 21600
ACTIONS = ("terminate", "stop", "hibernate")
# meta-data path -> key of the host's file, for the paths that are one plain value
PLAIN = {
    "instance-id": "instance-id",
    "local-ipv4": "local-ipv4",
    "mac": "mac",
    "placement/region": "region",
    "placement/availability-zone": "availability-zone",
}
NOTICES = {"spot/instance-action": "instance-action", "events/recommendations/rebalance": "rebalance"}


def host_file(state_dir: Path, address: str) -> Path:
    return Path(state_dir) / f"{address}.json"


def read_host(state_dir: Path, address: str) -> dict[str, Any] | None:
    try:
        return json.loads(host_file(state_dir, address).read_text())
    except FileNotFoundError:
        return None


def write_host(state_dir: Path, address: str, **metadata: Any) -> Path:
    """Replace a host's metadata; keyword names are the keys with _ for - (instance_id= for instance-id)."""
    return _write(state_dir, address, {key.replace("_", "-"): value for key, value in metadata.items()})


def give_notice(
    state_dir: Path, address: str, in_seconds: float = 120, action: str = "terminate", now: datetime | None = None
) -> dict[str, str]:
    """A Spot interruption notice for a host, acting in_seconds from now (0 or less: already past)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    notice = {"action": action, "time": iso_z((now or datetime.now(UTC)) + timedelta(seconds=in_seconds))}
    _update(state_dir, address, {"instance-action": notice})
    return notice


def give_rebalance(state_dir: Path, address: str, now: datetime | None = None) -> dict[str, str]:
    recommendation = {"noticeTime": iso_z(now or datetime.now(UTC))}
    _update(state_dir, address, {"rebalance": recommendation})
    return recommendation


def clear_notices(state_dir: Path, address: str) -> None:
    _update(state_dir, address, {"instance-action": None, "rebalance": None})


def iso_z(moment: datetime) -> str:
    """2026-11-20T05:14:40Z: UTC, to the second, as EC2 writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _update(state_dir: Path, address: str, changes: dict[str, Any]) -> Path:
    metadata = read_host(state_dir, address)
    if metadata is None:
        raise FileNotFoundError(f"no lab host at {address} in {state_dir}: write_host first")
    metadata.update(changes)
    return _write(state_dir, address, {key: value for key, value in metadata.items() if value is not None})


def _write(state_dir: Path, address: str, metadata: dict[str, Any]) -> Path:
    """Atomically: the server, in another process, reads either the old file or the new one, never half of one."""
    path = host_file(state_dir, address)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def metadata_value(metadata: dict[str, Any], path: str) -> str | None:
    """What IMDS serves at meta-data/<path> for a host, or None (404)."""
    if path in PLAIN:
        value = metadata.get(PLAIN[path])
        return None if value is None else str(value)
    if path in NOTICES:
        notice = metadata.get(NOTICES[path])
        return notice if notice is None or isinstance(notice, str) else json.dumps(notice)
    if path == f"network/interfaces/macs/{metadata.get('mac')}/vpc-ipv4-cidr-blocks":
        blocks = metadata.get("vpc-ipv4-cidr-blocks")
        return None if blocks is None else "\n".join(blocks)
    return None


class ImdsHandler(BaseHTTPRequestHandler):
    server: FakeImdsServer
    timeout = 10  # a client that connects and says nothing must not hold a thread for ever

    def do_PUT(self) -> None:
        if self._faulty():
            return
        if self.path != TOKEN_PATH:
            self._answer(404)
            return
        ttl = self.headers.get(TOKEN_TTL_HEADER, "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TOKEN_TTL_S:
            self._answer(400, f"{TOKEN_TTL_HEADER} of 1..{MAX_TOKEN_TTL_S} is required")
            return
        self._answer(200, self.server.issue_token(int(ttl)), {TOKEN_TTL_HEADER: ttl})

    def do_GET(self) -> None:
        if self._faulty():
            return
        if not self.server.token_valid(self.headers.get(TOKEN_HEADER)):
            self._answer(401)
            return
        metadata = read_host(self.server.state_dir, self.client_address[0])
        path = self.path.removeprefix(META_DATA) if self.path.startswith(META_DATA) else None
        value = None if metadata is None or path is None else metadata_value(metadata, path)
        if value is None:
            self._answer(404)
        else:
            self._answer(200, value)

    def _faulty(self) -> bool:
        """Answer as the test asked for this path: late (after the client gave up) or with an HTTP error."""
        fault = self.server.faults.get(self.path)
        if fault is None:
            return False
        if fault == "timeout":
            time.sleep(self.server.fault_delay_s)
            self.close_connection = True
            return True
        self._answer(int(fault))
        return True

    def _answer(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-") -> None:
        if self.server.verbose:
            print(f"{self.address_string()} {self.command} {self.path} {code}", flush=True)


class FakeImdsServer(ThreadingHTTPServer):
    """The fake IMDS. As a context manager it serves from a thread of its own (tests); main() serves it for ever.

    For tests: ``faults`` maps a request path (/latest/meta-data/spot/instance-action, /latest/api/token) to
    "timeout" (no answer for fault_delay_s) or an HTTP status; ``expire_tokens()`` makes every token expire;
    ``token_ttls`` lists the TTL of every token asked for.
    """

    daemon_threads = True

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        verbose: bool = False,
    ):
        super().__init__((host, port), ImdsHandler)
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.verbose = verbose
        self.faults: dict[str, str | int] = {}
        self.fault_delay_s = 0.5
        self.token_ttls: list[int] = []
        self._tokens: dict[str, float] = {}  # token -> when it expires
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def issue_token(self, ttl_s: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = self.clock() + ttl_s
            self.token_ttls.append(ttl_s)
        return token

    def token_valid(self, token: str | None) -> bool:
        with self._lock:
            return token in self._tokens and self.clock() < self._tokens[token]

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def __enter__(self) -> FakeImdsServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address:port on the lab bridge")
    parser.add_argument("--state-dir", required=True, type=Path, help="one <address>.json per host")
    args = parser.parse_args()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    address, port = args.listen.rsplit(":", 1)
    FakeImdsServer(args.state_dir, address, int(port), verbose=True).serve_forever()


if __name__ == "__main__":
    main()
