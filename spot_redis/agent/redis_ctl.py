"""The local Redis, through redis-cli as the admin ACL user, and its systemd unit.

The admin's password comes from the credentials file the redis role writes (shell-quoted ``REDIS_ADMIN_USER`` and
``REDISCLI_AUTH``) and reaches redis-cli only through its environment: never a command line, never a log line.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

CREDENTIALS_FILE = Path("/etc/spot-redis/redis-admin.env")
COMMAND_TIMEOUT_S = 2.0  # PING-like commands answer in milliseconds; longer means Redis is stuck
SAVE_TIMEOUT_S = 12.0  # a staging dataset of about a GB saves in seconds
STOP_TIMEOUT_S = 10.0  # after the drain's SAVE, stopping only syncs the append-only file (no second RDB save)

Run = Callable[..., subprocess.CompletedProcess]


class RedisError(RuntimeError):
    """A redis-cli or systemctl command failed; the message names the command and the error, never the password."""


class RedisControl:
    def __init__(
        self,
        credentials_file: Path = CREDENTIALS_FILE,
        host: str = "127.0.0.1",
        port: int = 6379,
        run: Run = subprocess.run,
    ):
        self.credentials_file = Path(credentials_file)
        self.host = host
        self.port = port
        self.run = run
        self._credentials: tuple[str, str] | None = None

    def pause_writes(self, ms: int, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self._expect_ok(self._cli(["CLIENT", "PAUSE", str(int(ms)), "WRITE"], timeout_s), "CLIENT PAUSE")

    def save(self, timeout_s: float = SAVE_TIMEOUT_S) -> None:
        self._expect_ok(self._cli(["SAVE"], timeout_s), "SAVE")

    def without_save_points(self, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        """No RDB save when Redis stops (this run only; redis.conf is untouched): the drain has just saved."""
        self._expect_ok(self._cli(["CONFIG", "SET", "save", ""], timeout_s), "CONFIG SET save")

    def dbsize(self, timeout_s: float = COMMAND_TIMEOUT_S) -> int:
        return self._integer(self._cli(["DBSIZE"], timeout_s), "DBSIZE")

    def lastsave(self, timeout_s: float = COMMAND_TIMEOUT_S) -> int:
        """The unix time of the last successful save."""
        return self._integer(self._cli(["LASTSAVE"], timeout_s), "LASTSAVE")

    def stop_service(self, unit: str = "redis-server", timeout_s: float = STOP_TIMEOUT_S) -> None:
        command = ["systemctl", "stop", unit]
        self._execute(command, timeout_s, env=None, label=shlex.join(command))

    def _cli(self, words: list[str], timeout_s: float) -> str:
        user, password = self._admin()
        command = ["redis-cli", "-h", self.host, "-p", str(self.port), "--user", user, "--no-auth-warning", *words]
        env = {**os.environ, "REDISCLI_AUTH": password}
        output = self._execute(command, timeout_s, env=env, label=f"redis-cli {' '.join(words)}")
        # redis-cli may exit 0 after an error reply; the reply itself says so.
        if output.startswith(("ERR", "(error)", "NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "BUSY", "MISCONF")):
            raise RedisError(f"redis-cli {' '.join(words)}: {self._scrub(output)}")
        return output

    def _execute(self, command: list[str], timeout_s: float, env: dict[str, str] | None, label: str) -> str:
        try:
            result = self.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired as error:
            raise RedisError(f"{label}: no answer within {timeout_s:g} s") from error
        except OSError as error:
            raise RedisError(f"{label}: {error.strerror or error}") from error
        output = (result.stdout or "").strip()
        if result.returncode != 0:
            detail = (result.stderr or "").strip() or output or f"exit status {result.returncode}"
            raise RedisError(f"{label}: {self._scrub(detail)}")
        return output

    def _admin(self) -> tuple[str, str]:
        if self._credentials is None:
            self._credentials = read_credentials(self.credentials_file)
        return self._credentials

    def _scrub(self, text: str) -> str:
        password = self._credentials[1] if self._credentials else ""
        return text.replace(password, "***") if password else text

    @staticmethod
    def _expect_ok(output: str, name: str) -> None:
        if output != "OK":
            raise RedisError(f"redis-cli {name}: expected OK, got {output[:200]!r}")

    @staticmethod
    def _integer(output: str, name: str) -> int:
        try:
            return int(output.removeprefix("(integer) "))
        except ValueError:
            raise RedisError(f"redis-cli {name}: expected an integer, got {output[:200]!r}") from None


def read_credentials(path: Path) -> tuple[str, str]:
    """(user, password) from the redis role's shell-quoted environment file."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise RedisError(f"cannot read the Redis admin credentials {path}: {error.strerror}") from None
    try:
        values = dict(_assignment(token) for token in shlex.split(text, comments=True))
    except ValueError:
        raise RedisError(f"{path}: not a shell-quoted KEY=value file") from None
    missing = [key for key in ("REDIS_ADMIN_USER", "REDISCLI_AUTH") if not values.get(key)]
    if missing:
        raise RedisError(f"{path} lacks {', '.join(missing)}")
    return values["REDIS_ADMIN_USER"], values["REDISCLI_AUTH"]


def _assignment(token: str) -> tuple[str, str]:
    key, equals, value = token.partition("=")
    if not equals:
        raise ValueError(token)
    return key, value
