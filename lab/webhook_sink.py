"""The lab's stand-in for Slack and for a dead-man's-switch service (healthchecks.io style), over HTTPS.

Every request to a known path is kept, body as received, as one JSON file in that path's folder:

    POST https://<listen>/slack/<token>      -> <slack dir>/<time_ns>.json        (answers "ok", as Slack does)
    POST https://<listen>/heartbeat/<token>  -> <heartbeat dir>/<time_ns>.json

The tokens stand for the secrets real webhook URLs carry: any other path is answered 404 and kept nowhere.
Each URL is read from a root-only file, so that no token shows on a command line or in the sink's log.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import ssl
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

MAX_BODY = 1024 * 1024
_sequence = itertools.count()


def record(folder: Path, body: bytes) -> Path:
    """Keep one request body as a file of its own, written whole before it appears under its name."""
    name = f"{time.time_ns()}-{next(_sequence):06d}.json"
    partial = folder / f".{name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    return partial.rename(folder / name)


def received(folder: Path, since_ns: int = 0) -> list[tuple[int, dict]]:
    """What the sink kept in a folder, oldest first, as (arrival time in ns, body), from since_ns on."""
    found = []
    for path in sorted(folder.glob("*.json")):
        arrived = int(path.name.split("-", 1)[0])
        if arrived >= since_ns:
            found.append((arrived, json.loads(path.read_text())))
    return found


def slack_titles(folder: Path, since_ns: int = 0) -> list[tuple[int, str]]:
    """The attachment titles of the Slack messages kept since since_ns (Alertmanager's slack_configs send one)."""
    return [
        (arrived, attachment.get("title", ""))
        for arrived, body in received(folder, since_ns)
        for attachment in (body.get("attachments") or [] if isinstance(body, dict) else [])
    ]


def as_json(body: bytes) -> bytes:
    """The body itself when it is JSON (what Slack and Alertmanager send), else wrapped as a JSON string."""
    try:
        json.loads(body or b"null")
        return body or b"null"
    except ValueError:
        return json.dumps({"raw": body.decode(errors="replace")}).encode()


class SinkHandler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Path]] = {}  # path -> folder
    timeout = 10  # a client that connects and says nothing must not hold a thread for ever

    def setup(self) -> None:
        # The TLS handshake happens here, in the request's own thread (not in the one that accepts), with a timeout.
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def do_POST(self) -> None:
        folder = self.routes.get(self.path)
        length = self.headers.get("Content-Length") or "0"
        if folder is None:
            self.send_error(404)
            return
        if not length.isdigit() or int(length) > MAX_BODY:
            self.send_error(400, "a Content-Length of at most 1 MiB is needed")
            return
        length = int(length)
        record(folder, as_json(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_request(self, code="-", size="-") -> None:
        """Log the folder, never the path: the path holds the token."""
        folder = self.routes.get(self.path)
        print(f"{self.address_string()} {self.command} {folder.name if folder else 'unknown path'} {code}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address:port on the lab bridge")
    parser.add_argument("--cert", required=True, type=Path, help="server certificate and key, PEM")
    parser.add_argument("--route", action="append", required=True, metavar="FOLDER=URL_FILE", help="repeatable")
    args = parser.parse_args()
    for route in args.route:
        folder, url_file = route.split("=", 1)
        path = urllib.parse.urlsplit(Path(url_file).read_text().strip()).path
        SinkHandler.routes[path] = Path(folder)
        Path(folder).mkdir(parents=True, exist_ok=True, mode=0o700)
    address, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((address, int(port)), SinkHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
