"""The instance metadata service (IMDSv2) on urllib: the host's identity for the boot, Spot notices for the watcher.

IMDS answers 404 when there is nothing at a path (no notice yet). Anything that is not an answer (a timeout, a
refused connection, a 5xx) raises ImdsUnavailable: it is never taken for "no notice", nor for a notice.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 - a header name, not a secret
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - likewise
INTERRUPTION_PATH = "spot/instance-action"
REBALANCE_PATH = "events/recommendations/rebalance"
INTERRUPTION_ACTIONS = ("terminate", "stop", "hibernate")
MIN_TOKEN_MARGIN_S = 60


class ImdsUnavailable(Exception):  # noqa: N818 - named for what happened, as the callers read it
    """IMDS did not answer (timeout, connection error, 5xx, no token): try again later."""


class MalformedMetadata(ValueError):  # noqa: N818 - named for what happened, as the callers read it
    """IMDS answered with a body that is not of the documented shape."""


class MissingMetadata(LookupError):  # noqa: N818 - named for what happened, as the callers read it
    """IMDS has nothing at a path every instance has (instance-id, mac...)."""


@dataclass(frozen=True)
class InterruptionNotice:
    action: str  # terminate, stop or hibernate
    time: datetime  # when EC2 acts, UTC


@dataclass(frozen=True)
class RebalanceRecommendation:
    notice_time: datetime  # when EC2 made the recommendation, UTC


class Imds:
    """An IMDSv2 client that keeps its session token and renews it well before it expires."""

    def __init__(
        self,
        base_url: str = "http://169.254.169.254",
        token_ttl_s: int = 21600,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_url = base_url.rstrip("/")
        self.token_ttl_s = token_ttl_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        # IMDS is link-local: an http_proxy in the environment must never see these requests.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str) -> str | None:
        """The text at meta-data/<path>, or None when IMDS has nothing there (404)."""
        for attempt in range(2):
            status, body = self._request("GET", f"/latest/meta-data/{path}", {TOKEN_HEADER: self._valid_token()})
            if status == 200:
                return body
            if status == 404:
                return None
            if status == 401 and attempt == 0:
                self._token = None  # revoked or expired early: one new token, one more try
                continue
            raise ImdsUnavailable(f"GET {path}: HTTP {status}")
        raise AssertionError("unreachable")

    def interruption_notice(self) -> InterruptionNotice | None:
        body = self.get(INTERRUPTION_PATH)
        return None if body is None else parse_interruption_notice(body)

    def rebalance_recommendation(self) -> RebalanceRecommendation | None:
        body = self.get(REBALANCE_PATH)
        return None if body is None else parse_rebalance_recommendation(body)

    def instance_id(self) -> str:
        return self._required("instance-id")

    def local_ipv4(self) -> str:
        return self._required("local-ipv4")

    def region(self) -> str:
        return self._required("placement/region")

    def mac(self) -> str:
        return self._required("mac")

    def vpc_cidrs(self) -> list[str]:
        blocks = self._required(f"network/interfaces/macs/{self.mac()}/vpc-ipv4-cidr-blocks")
        return [line.strip() for line in blocks.splitlines() if line.strip()]

    def _required(self, path: str) -> str:
        value = self.get(path)
        if value is None or not value.strip():
            raise MissingMetadata(f"instance metadata has nothing at {path}")
        return value.strip()

    def _valid_token(self) -> str:
        if self._token is None or self.clock() >= self._renew_at:
            asked_at = self.clock()
            self._token = self._new_token()
            margin = min(max(self.token_ttl_s / 10, MIN_TOKEN_MARGIN_S), self.token_ttl_s / 2)
            self._renew_at = asked_at + self.token_ttl_s - margin
        return self._token

    def _new_token(self) -> str:
        status, body = self._request("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: str(self.token_ttl_s)})
        if status != 200 or not body.strip():
            raise ImdsUnavailable(f"PUT api/token: HTTP {status}")
        return body.strip()

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers)  # noqa: S310 - IMDS is plain http by design
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except (OSError, http.client.HTTPException, UnicodeDecodeError) as error:
            raise ImdsUnavailable(f"{method} {path}: {error}") from None


def parse_interruption_notice(body: str) -> InterruptionNotice:
    """{"action": "terminate", "time": "2026-11-20T05:14:40Z"}"""
    raw = _json_object(INTERRUPTION_PATH, body)
    action = raw.get("action")
    if action not in INTERRUPTION_ACTIONS:
        raise MalformedMetadata(f"{INTERRUPTION_PATH}: action {action!r} is none of {INTERRUPTION_ACTIONS}")
    return InterruptionNotice(action=action, time=_utc_time(INTERRUPTION_PATH, "time", raw.get("time")))


def parse_rebalance_recommendation(body: str) -> RebalanceRecommendation:
    """{"noticeTime": "2026-11-20T05:12:40Z"}"""
    raw = _json_object(REBALANCE_PATH, body)
    return RebalanceRecommendation(notice_time=_utc_time(REBALANCE_PATH, "noticeTime", raw.get("noticeTime")))


def _json_object(path: str, body: str) -> dict:
    try:
        raw = json.loads(body)
    except ValueError:
        raise MalformedMetadata(f"{path}: not JSON: {body[:200]!r}") from None
    if not isinstance(raw, dict):
        raise MalformedMetadata(f"{path}: not a JSON object: {body[:200]!r}")
    return raw


def _utc_time(path: str, key: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise MalformedMetadata(f"{path}: {key} {value!r} is not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMetadata(f"{path}: {key} {value!r} is not an ISO 8601 time") from None
    # IMDS writes UTC with a Z; a time without a zone is read as UTC rather than dropped.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
