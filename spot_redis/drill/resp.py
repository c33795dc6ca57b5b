"""A minimal Redis client (RESP2 over one socket), enough for the drill's writer: AUTH, SET, MGET, DBSIZE.

The drill's writer runs with the Python it is given (the lab's client namespace has no redis-py), and it must see
every failure as it happens: one command, one reply, no pool, no retry.
"""

from __future__ import annotations

import socket


class RedisReplyError(RuntimeError):
    """Redis answered with an error (-ERR ...)."""


class Connection:
    def __init__(self, address: str, port: int, timeout_s: float):
        self.sock = socket.create_connection((address, port), timeout=timeout_s)
        self.reader = self.sock.makefile("rb")

    def command(self, *args: str | bytes | int):
        # A str may hold a key name that is not UTF-8 as surrogate escapes (check.py reads them so): the same bytes.
        parts = [a if isinstance(a, bytes) else str(a).encode(errors="surrogateescape") for a in args]
        frame = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(frame)
        return self._reply()

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the connection closed in the middle of a reply")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RedisReplyError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            data = self.reader.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("the connection closed in the middle of a reply")
            return data[:-2]
        if kind == b"*":
            count = int(body)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"not a Redis reply: {line[:40]!r}")

    def close(self) -> None:
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


def login(address: str, port: int, user: str, password: str, timeout_s: float) -> Connection:
    connection = Connection(address, port, timeout_s)
    try:
        connection.command("AUTH", user, password)
    except BaseException:
        connection.close()
        raise
    return connection
