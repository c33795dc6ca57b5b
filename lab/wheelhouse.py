"""Wheels for the lab hosts, which have no way to the internet: a wheelhouse built once on the machine, and a read-only
file server for it on the lab bridge.

    ensure_wheelhouse(cache_dir, ["ansible-core==2.19.14"])   -> <cache_dir>/wheelhouse-<hash>/ (built once)
    python3 lab/wheelhouse.py --listen=10.213.37.1:8180 --dir=<that wheelhouse>

A host then installs from it with `pip install --no-index --find-links http://10.213.37.1:8180/ ansible-core==...`.
The wheels are for the hosts' interpreter, Debian 12's python3 (CPython 3.11, glibc 2.36), on this machine's
architecture, whatever Python runs this module.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIP = REPO / ".venv" / "bin" / "pip"
PIP_TIMEOUT_S = 900

# The hosts' interpreter: Debian 12's python3.
TARGET_PYTHON = "3.11"
TARGET_ABI = "cp311"
TARGET_GLIBC_MINOR = 36  # Debian 12's glibc 2.36


def target_platforms(machine: str | None = None) -> list[str]:
    """pip's --platform values for Debian 12 on this machine's architecture, newest first.

    pip does not widen a PEP 600 tag (manylinux_2_36 does not admit a manylinux_2_17 wheel): every glibc version a
    wheel may require, up to the hosts' own, is listed; manylinux2014 (2_17) admits manylinux2010 and manylinux1.
    """
    machine = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return [f"manylinux_2_{minor}_{arch}" for minor in range(TARGET_GLIBC_MINOR, 4, -1)] + [f"manylinux2014_{arch}"]


def wheelhouse_name(requirements: list[str], platforms: list[str]) -> str:
    """wheelhouse-<hash>: the same requirements (in any order) for the same target give the same name."""
    key = {"requirements": sorted(r.strip() for r in requirements), "python": TARGET_PYTHON, "platforms": platforms}
    return "wheelhouse-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def ensure_wheelhouse(cache_dir: Path, requirements: list[str], *, pip: Path = PIP) -> Path:
    """The wheelhouse of these requirements (and all they depend on) under cache_dir, downloaded on first use.

    pip downloads into a hidden temporary directory that is renamed once complete: the wheelhouse either exists
    whole or not at all, and a killed run leaves only its temporary directory, removed by the next run.
    """
    if not requirements or any(not r.strip() or r.strip().startswith("-") for r in requirements):
        raise ValueError(f"requirements must be a non-empty list of requirement specifiers, got {requirements!r}")
    platforms = target_platforms()
    cache_dir = Path(cache_dir)
    final = cache_dir / wheelhouse_name(requirements, platforms)
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".wheelhouse.lock"):
        if final.is_dir():  # another run built it while this one waited
            return final
        for stale in cache_dir.glob(".wheelhouse-*.partial-*"):  # what a killed run left (no run holds the lock)
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=cache_dir))
        try:
            platform_options = [option for tag in platforms for option in ("--platform", tag)]
            command = [
                str(pip), "download", "--disable-pip-version-check", "--no-input", "--quiet",
                "--only-binary=:all:", "--implementation", "cp", "--python-version", TARGET_PYTHON,
                "--abi", TARGET_ABI, *platform_options, "--dest", str(partial), *(r.strip() for r in requirements),
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
                raise RuntimeError(f"pip download of {requirements} failed (exit {result.returncode}):\n{tail}")
            if not any(partial.glob("*.whl")):
                raise RuntimeError(f"pip download of {requirements} left no wheel in {partial}")
            partial.chmod(0o755)  # mkdtemp's 0700 would hide the wheels from a server that is not root
            partial.rename(final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return final


@contextlib.contextmanager
def _locked(path: Path):
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class WheelhouseHandler(SimpleHTTPRequestHandler):
    """Files of one directory, and its listing (what pip's --find-links reads): GET and HEAD only, nothing outside."""

    server_version = "spot-redis-lab-wheelhouse"
    timeout = 30  # a client that connects and says nothing must not hold a thread for ever

    def send_head(self):
        # translate_path drops "..", but a symbolic link in the directory could still lead out of it.
        root = os.path.realpath(self.directory)
        target = os.path.realpath(self.translate_path(self.path))
        if target != root and not target.startswith(root + os.sep):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def log_message(self, format, *args) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def make_server(address: str, port: int, directory: Path) -> ThreadingHTTPServer:
    handler = functools.partial(WheelhouseHandler, directory=str(Path(directory).resolve()))
    return ThreadingHTTPServer((address, port), handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address:port on the lab bridge (port 0: any)")
    parser.add_argument("--dir", required=True, type=Path, help="the wheelhouse to serve, read-only")
    args = parser.parse_args()
    if not args.dir.is_dir():
        sys.exit(f"wheelhouse: {args.dir} is not a directory")
    address, port = args.listen.rsplit(":", 1)
    server = make_server(address, int(port), args.dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, bound = server.server_address[:2]
    print(f"wheelhouse: serving {args.dir.resolve()} on http://{host}:{bound}/", flush=True)
    while not stop.wait(1):
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
