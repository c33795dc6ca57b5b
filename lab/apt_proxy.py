"""A forward HTTP proxy for the lab hosts' apt, that reaches Debian's package registry and nothing else.

The lab's namespaces have no route off the lab bridge: this proxy, on the bridge address, is their only way out.
It serves plain-HTTP GET/HEAD for the allowed hosts, refuses everything else (CONNECT included), and keeps
.deb files (immutable: the version is in the name) in a cache that outlives the lab, so rebuilt hosts install fast.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}
UPSTREAM_TIMEOUT_S = 60
CHUNK = 64 * 1024


def upstream_target(url: str, allowed_hosts: tuple[str, ...]) -> tuple[str, str] | None:
    """(host, path-with-query) when url is a plain-HTTP URL on an allowed host, else None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in allowed_hosts or parts.port not in (None, 80):
        return None
    path = parts.path or "/"
    return parts.hostname, path + (f"?{parts.query}" if parts.query else "")


def upstream_headers(client_headers, host: str) -> dict[str, str]:
    """The client's end-to-end headers, with Host forced to the allowed host: a CDN routes plain HTTP by Host,
    so a client's own Host header would reach any site behind the same CDN."""
    headers = {k: v for k, v in client_headers if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
    return {**headers, "Host": host, "Connection": "close"}


def cache_key(host: str, path: str) -> str | None:
    """The cache file name for a response worth caching (.deb packages only), else None."""
    if not path.endswith(".deb") or "?" in path:
        return None
    digest = hashlib.sha256(f"{host}{path}".encode()).hexdigest()[:16]
    return f"{digest}-{os.path.basename(path)}"


class ProxyHandler(BaseHTTPRequestHandler):
    allowed_hosts: tuple[str, ...] = ()
    cache_dir: Path | None = None

    def do_GET(self) -> None:
        self._forward(send_body=True)

    def do_HEAD(self) -> None:
        self._forward(send_body=False)

    def do_CONNECT(self) -> None:
        self.send_error(403, "CONNECT is not allowed from the lab")

    def _forward(self, send_body: bool) -> None:
        target = upstream_target(self.path, self.allowed_hosts)
        if target is None:
            self.send_error(403, "only plain HTTP to Debian's package registry is allowed from the lab")
            return
        host, path = target
        key = cache_key(host, path) if send_body else None
        cached = self.cache_dir / key if key and self.cache_dir else None
        if cached and cached.is_file():
            self._send_file(cached)
            return
        conn = http.client.HTTPConnection(host, 80, timeout=UPSTREAM_TIMEOUT_S)
        try:
            conn.request(self.command, path, headers=upstream_headers(self.headers.items(), host))
            response = conn.getresponse()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if send_body:
                self._relay(response, cached if response.status == 200 else None)
        except OSError as error:
            self.log_error("upstream %s failed: %s", host, error)
            self.close_connection = True
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse, cache_file: Path | None) -> None:
        if cache_file is None:
            shutil.copyfileobj(response, self.wfile, CHUNK)
            return
        partial = cache_file.with_name(f"{cache_file.name}.partial-{threading.get_ident()}")
        try:
            with partial.open("wb") as sink:
                while chunk := response.read(CHUNK):
                    self.wfile.write(chunk)
                    sink.write(chunk)
            os.replace(partial, cache_file)  # only a whole download becomes a cache entry
        finally:
            partial.unlink(missing_ok=True)

    def _send_file(self, path: Path) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.debian.binary-package")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Connection", "close")
        self.end_headers()
        with path.open("rb") as source:
            shutil.copyfileobj(source, self.wfile, CHUNK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="address:port on the lab bridge")
    parser.add_argument("--allow", action="append", required=True, help="an upstream host name (repeatable)")
    parser.add_argument("--cache-dir", type=Path, help="where .deb files are kept between labs")
    args = parser.parse_args()
    address, port = args.listen.rsplit(":", 1)
    if args.cache_dir:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
    ProxyHandler.allowed_hosts = tuple(args.allow)
    ProxyHandler.cache_dir = args.cache_dir
    ThreadingHTTPServer((address, int(port)), ProxyHandler).serve_forever()


if __name__ == "__main__":
    main()
