"""Small helpers shared by the lab tests."""

import json
import time
import urllib.request


def get_json(url: str):
    assert url.startswith("http://")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (checked just above)
        return json.load(response)


def post_json(url: str, payload) -> int:
    assert url.startswith("http://")
    request = urllib.request.Request(  # noqa: S310 (checked just above)
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status


def wait_for(what: str, check, bound_s: float, every_s: float = 2):
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {bound_s} s")
