"""The lab's wheelhouse: built once per set of requirements, whole or not at all, for the hosts' Python; and served
read-only, with a listing that pip's --find-links reads."""

import http.client
import itertools
import re
import selectors
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from lab.wheelhouse import TARGET_ABI, TARGET_PYTHON, ensure_wheelhouse, make_server, target_platforms

REPO = Path(__file__).resolve().parents[3]

# A stand-in for pip: records its arguments, and puts a wheel in --dest (or fails, when told to).
FAKE_PIP = """#!/bin/sh
echo "$@" >> "{log}"
[ -e "{fail}" ] && {{ echo "ERROR: No matching distribution found for nothing" >&2; exit 1; }}
while [ "$#" -gt 0 ]; do
  if [ "$1" = "--dest" ]; then touch "$2/demo-1.0-py3-none-any.whl"; fi
  shift
done
"""


@pytest.fixture
def fake_pip(tmp_path):
    pip = tmp_path / "pip"
    log = tmp_path / "pip.log"
    pip.write_text(FAKE_PIP.format(log=log, fail=tmp_path / "fail"))
    pip.chmod(0o755)
    return pip, log, tmp_path / "fail"


def calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_pip_runs_once_per_set_of_requirements(tmp_path, fake_pip):
    pip, log, _ = fake_pip
    cache = tmp_path / "cache"
    first = ensure_wheelhouse(cache, ["ansible-core==2.19.14", "demo==1.0"], pip=pip)
    assert ensure_wheelhouse(cache, ["demo==1.0", "ansible-core==2.19.14"], pip=pip) == first  # order is no matter
    assert len(calls(log)) == 1
    assert re.fullmatch(r"wheelhouse-[0-9a-f]{16}", first.name) and first.parent == cache
    assert [path.name for path in first.iterdir()] == ["demo-1.0-py3-none-any.whl"]
    other = ensure_wheelhouse(cache, ["ansible-core==2.19.13"], pip=pip)
    assert other != first and len(calls(log)) == 2


def test_pip_downloads_binary_wheels_for_the_hosts_python_into_a_hidden_directory(tmp_path, fake_pip):
    pip, log, _ = fake_pip
    ensure_wheelhouse(tmp_path / "cache", ["ansible-core==2.19.14"], pip=pip)
    [argv] = calls(log)
    assert argv[0] == "download" and "--only-binary=:all:" in argv and argv[-1] == "ansible-core==2.19.14"
    options = dict(itertools.pairwise(argv))
    assert (options["--implementation"], options["--python-version"], options["--abi"]) == ("cp", "3.11", "cp311")
    assert (TARGET_PYTHON, TARGET_ABI) == ("3.11", "cp311")  # Debian 12's python3
    platforms = [value for option, value in itertools.pairwise(argv) if option == "--platform"]
    assert platforms == target_platforms()
    assert Path(options["--dest"]).parent == tmp_path / "cache"
    assert Path(options["--dest"]).name.startswith(".wheelhouse-")


def test_the_platforms_are_debian_12s_glibc_and_older_on_this_architecture():
    platforms = target_platforms("x86_64")
    assert platforms[0] == "manylinux_2_36_x86_64"  # Debian 12's glibc: nothing newer
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(platforms)
    assert "manylinux_2_37_x86_64" not in platforms
    assert target_platforms("arm64")[0] == "manylinux_2_36_aarch64"


def test_a_failed_download_leaves_nothing_behind_and_says_why(tmp_path, fake_pip):
    pip, _, fail = fake_pip
    fail.touch()
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="No matching distribution found"):
        ensure_wheelhouse(cache, ["ansible-core==0.0.0"], pip=pip)
    assert [path.name for path in cache.iterdir()] == [".wheelhouse.lock"]


def test_what_a_killed_run_left_is_removed_and_never_used(tmp_path, fake_pip):
    pip, log, _ = fake_pip
    cache = tmp_path / "cache"
    cache.mkdir()
    left = cache / ".wheelhouse-0123456789abcdef.partial-x1y2"
    left.mkdir()
    (left / "half.whl").touch()
    built = ensure_wheelhouse(cache, ["demo==1.0"], pip=pip)
    assert not left.exists() and len(calls(log)) == 1
    assert sorted(path.name for path in cache.iterdir()) == [".wheelhouse.lock", built.name]


@pytest.mark.parametrize("requirements", [[], [""], ["--index-url=http://elsewhere/"]])
def test_requirements_must_be_requirements(tmp_path, fake_pip, requirements):
    with pytest.raises(ValueError, match="requirement specifiers"):
        ensure_wheelhouse(tmp_path, requirements, pip=fake_pip[0])


# --- the server -----------------------------------------------------------------------------------------------


def make_wheel(folder: Path, name: str = "demo", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel, enough for pip to find and download it."""
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def wheel_server(tmp_path):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    make_wheel(house)
    (tmp_path / "secret").write_text("outside the wheelhouse")
    server = make_server("127.0.0.1", 0, house)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], house, tmp_path
    server.shutdown()
    server.server_close()


def request(port: int, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def test_it_lists_and_serves_the_wheels(wheel_server):
    port, house, _ = wheel_server
    listing = request(port, "GET", "/")
    assert listing.status == 200 and b'href="demo-1.0-py3-none-any.whl"' in listing.body
    wheel = request(port, "GET", "/demo-1.0-py3-none-any.whl")
    assert wheel.status == 200 and wheel.body == (house / "demo-1.0-py3-none-any.whl").read_bytes()
    assert request(port, "HEAD", "/demo-1.0-py3-none-any.whl").status == 200


@pytest.mark.parametrize("path", ["/../secret", "/%2e%2e/secret", "/..%2fsecret", "/link-out", "/dir-out/secret"])
def test_nothing_outside_its_directory(wheel_server, path):
    port, house, tmp_path = wheel_server
    (house / "link-out").symlink_to(tmp_path / "secret")
    (house / "dir-out").symlink_to(tmp_path)
    response = request(port, "GET", path)
    assert response.status == 404 and b"outside the wheelhouse" not in response.body


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_it_is_read_only(wheel_server, method):
    port, house, _ = wheel_server
    response = request(port, method, "/new.whl", body=b"not a wheel")
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
    assert sorted(path.name for path in house.iterdir()) == ["demo-1.0-py3-none-any.whl"]


def test_pip_finds_the_wheels_through_its_listing(wheel_server, tmp_path):
    port, _, _ = wheel_server
    dest = tmp_path / "downloaded"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--quiet",
         "--no-index", "--find-links", f"http://127.0.0.1:{port}/", "--dest", dest, "demo==1.0"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert [path.name for path in dest.iterdir()] == ["demo-1.0-py3-none-any.whl"]


def test_the_daemon_logs_where_it_serves_and_exits_cleanly_on_sigterm(tmp_path):
    make_wheel(tmp_path)
    daemon = subprocess.Popen(
        [sys.executable, str(REPO / "lab" / "wheelhouse.py"), "--listen=127.0.0.1:0", f"--dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(daemon.stdout, selectors.EVENT_READ)
            assert selector.select(10), "the daemon printed nothing"
        line = daemon.stdout.readline()
        found = re.fullmatch(rf"wheelhouse: serving {re.escape(str(tmp_path))} on http://127\.0\.0\.1:(\d+)/\n", line)
        assert found, line
        assert request(int(found.group(1)), "GET", "/").status == 200
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        daemon.kill()
        daemon.wait()
