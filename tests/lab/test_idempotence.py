"""A second converge of a converged lab changes nothing, and no run prints a secret."""

import time


def test_second_converge_changes_nothing(converge, lab):
    started = time.monotonic()
    result = converge()
    print(f"second converge took {time.monotonic() - started:.1f} s")

    assert result.returncode == 0, result.output[-3000:]
    recap = result.recap()
    assert recap, "no PLAY RECAP in the output"
    assert {host: counts["changed"] for host, counts in recap.items()} == dict.fromkeys(recap, 0), result.output[-3000:]
    for secret in ("REDIS_APP_PASSWORD", "REDIS_ADMIN_PASSWORD"):
        assert lab[secret] not in result.output
