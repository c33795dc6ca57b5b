"""The lab's Slack and dead-man's-switch stand-in keeps exactly what reaches its secret paths."""

import http.client
import json
import socket
import ssl
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest

from lab.webhook_sink import SinkHandler, as_json, received, record


def test_record_keeps_each_body_in_a_file_of_its_own_in_arrival_order(tmp_path):
    record(tmp_path, b'{"n": 1}')
    record(tmp_path, b'{"n": 2}')
    assert [body["n"] for _, body in received(tmp_path)] == [1, 2]
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in tmp_path.iterdir())


def test_received_since_leaves_out_what_came_before(tmp_path):
    first = record(tmp_path, b"{}")
    since = int(first.name.split("-")[0]) + 1
    record(tmp_path, b'{"late": true}')
    assert [body for _, body in received(tmp_path, since)] == [{"late": True}]


def test_a_body_that_is_not_json_is_kept_as_text():
    assert json.loads(as_json(b"ping")) == {"raw": "ping"}
    assert as_json(b'{"text": "hi"}') == b'{"text": "hi"}'


@pytest.fixture
def sink(tmp_path):
    """The sink on loopback over TLS, with a throwaway self-signed certificate."""
    pem = tmp_path / "server.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", pem, "-out", pem],
        check=True, capture_output=True,
    )  # fmt: skip
    SinkHandler.routes = {"/slack/secret-token": tmp_path / "slack"}
    (tmp_path / "slack").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), SinkHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address, ssl.create_default_context(cafile=pem), tmp_path / "slack"
    server.shutdown()


def post(sink, path: str, body: bytes) -> int:
    (host, port), context, _ = sink
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    return conn.getresponse().status


def test_secret_path_is_kept_and_any_other_refused(sink):
    assert post(sink, "/slack/secret-token", b'{"text": "RedisDown"}') == 200
    assert post(sink, "/slack/guessed-token", b'{"text": "nope"}') == 404
    assert [body for _, body in received(sink[2])] == [{"text": "RedisDown"}]


def test_a_silent_client_does_not_hold_up_the_others(sink):
    (host, port), _, _ = sink
    with socket.create_connection((host, port), timeout=5):  # connects, never starts TLS
        assert post(sink, "/slack/secret-token", b'{"text": "still delivered"}') == 200


def test_a_request_without_a_sane_length_is_refused(sink):
    (host, port), context, folder = sink
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    conn.putrequest("POST", "/slack/secret-token")
    conn.putheader("Content-Length", "-1")
    conn.endheaders()
    assert conn.getresponse().status == 400
    assert received(folder) == []
