"""A tiny Redis for the drill's unit tests: a threaded TCP server on 127.0.0.1 speaking just enough RESP2.

    with FakeRedis() as redis:                       # redis.address, redis.port
        redis.data["k"] = "v"; redis.expiring.add("k")
        redis.drop_on(3)                             # SET ... 3: the connection closes, nothing is answered

Commands: AUTH user password (+OK or -WRONGPASS; every other command first needs it, -NOAUTH), SET key value,
MGET key..., SCAN cursor [COUNT n] (everything at once, cursor 0), PTTL key (-2 absent, -1 without expiry, 5000 for
a key in `expiring`), EXISTS key...; anything else is -ERR. Keys and values are str (bytes that are not UTF-8 come as
surrogate escapes, as spot_redis.drill.check writes them). `commands` keeps every command received, in order, and
`logins` counts the successful AUTHs.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable

PASSWORD = "secret"  # noqa: S105 - the fake's default


def encode(reply) -> bytes:
    """A reply: str is a simple string, int an integer, Exception an error, None a nil bulk, bytes a bulk, list an
    array."""
    if isinstance(reply, Exception):
        return b"-%s\r\n" % str(reply).encode()
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, str):
        return b"+%s\r\n" % reply.encode()
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    return b"*%d\r\n" % len(reply) + b"".join(encode(item) for item in reply)


def text(value: str) -> bytes:
    return value.encode(errors="surrogateescape")


class FakeRedis:
    def __init__(self, user: str = "app", password: str = PASSWORD, address: str = "127.0.0.1", port: int = 0):
        self.user, self.password = user, password
        self.data: dict[str, str] = {}
        self.expiring: set[str] = set()
        self.drop_when: Callable[[str, str], bool] = lambda key, value: False  # (key, value) of a SET -> drop it?
        self.commands: list[list[str]] = []
        self.logins = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                authenticated = False
                while (command := fake._read(self.rfile)) is not None:
                    with fake.lock:
                        fake.commands.append(command)
                        if command[0].upper() == "SET" and fake.drop_when(*command[1:3]):
                            return  # the connection closes without an answer
                        if command[0].upper() == "AUTH":
                            authenticated = command[1:] == [fake.user, fake.password]
                            if authenticated:
                                fake.logins += 1
                            reply = "OK" if authenticated else RuntimeError("WRONGPASS invalid username-password")
                        elif not authenticated:
                            reply = RuntimeError("NOAUTH Authentication required.")
                        else:
                            reply = fake._answer(command[0].upper(), command[1:])
                    self.wfile.write(encode(reply))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((address, port), Handler)
        self.address, self.port = self._server.server_address[:2]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def drop_on(self, *seqs: int) -> None:
        """Close the connection, without answering, on a SET of any of these values (the writer's numbers)."""
        dropped = {str(seq) for seq in seqs}
        self.drop_when = lambda key, value: value in dropped

    def _read(self, reader) -> list[str] | None:
        """One command (an array of bulk strings), or None once the client is gone."""
        header = reader.readline()
        if not header.startswith(b"*"):
            return None
        args = []
        for _ in range(int(header[1:])):
            size = int(reader.readline()[1:])
            args.append(reader.read(size + 2)[:-2].decode(errors="surrogateescape"))
        return args

    def _answer(self, name: str, args: list[str]):
        if name == "SET":
            self.data[args[0]] = args[1]
            if "EX" in (arg.upper() for arg in args[2:]):
                self.expiring.add(args[0])
            return "OK"
        if name == "MGET":
            return [None if key not in self.data else text(self.data[key]) for key in args]
        if name == "SCAN":
            return [b"0", [text(key) for key in self.data]]
        if name == "PTTL":
            return -2 if args[0] not in self.data else 5000 if args[0] in self.expiring else -1
        if name == "EXISTS":
            return sum(key in self.data for key in args)
        return RuntimeError(f"ERR unknown command '{name}'")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
