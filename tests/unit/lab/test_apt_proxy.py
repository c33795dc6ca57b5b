"""The lab's apt proxy lets the hosts reach Debian's registry and nothing else."""

import http.client
import threading
from http.server import ThreadingHTTPServer

import pytest

from lab.apt_proxy import ProxyHandler, cache_key, upstream_headers, upstream_target

ALLOWED = ("deb.debian.org",)


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            "http://deb.debian.org/debian/dists/bookworm/InRelease",
            ("deb.debian.org", "/debian/dists/bookworm/InRelease"),
        ),
        ("http://deb.debian.org:80/debian/?x=1", ("deb.debian.org", "/debian/?x=1")),
        ("http://deb.debian.org", ("deb.debian.org", "/")),
        ("https://deb.debian.org/debian/", None),
        ("http://deb.debian.org:8080/debian/", None),
        ("http://example.org/", None),
        ("http://deb.debian.org.evil.example/", None),
        ("http://169.254.169.254/latest/meta-data/", None),
        ("/debian/dists/bookworm/InRelease", None),
    ],
)
def test_only_plain_http_to_allowed_hosts_is_forwarded(url, expected):
    assert upstream_target(url, ALLOWED) == expected


def test_upstream_host_header_is_the_allowed_host_whatever_the_client_sent():
    sent = [("Host", "www.example.org"), ("HOST", "other.example"), ("Proxy-Connection", "keep-alive"), ("Range", "0-")]
    assert upstream_headers(sent, "deb.debian.org") == {"Range": "0-", "Host": "deb.debian.org", "Connection": "close"}


def test_only_packages_are_cached():
    assert cache_key("deb.debian.org", "/debian/pool/main/r/redis/redis-server_7.0.15-1_amd64.deb").endswith(
        "-redis-server_7.0.15-1_amd64.deb"
    )
    assert cache_key("deb.debian.org", "/debian/dists/bookworm/InRelease") is None


@pytest.fixture
def proxy():
    ProxyHandler.allowed_hosts = ALLOWED
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()


@pytest.mark.parametrize("method, target", [("GET", "http://example.org/"), ("CONNECT", "example.org:443")])
def test_proxy_refuses_other_destinations_without_contacting_them(proxy, method, target):
    conn = http.client.HTTPConnection(*proxy, timeout=5)
    conn.request(method, target)
    assert conn.getresponse().status == 403
