"""`alertbot serve` with its stdout on a terminal (a real pseudo-terminal): the console notifier
prints one readable line per notification, and `--log-format json` keeps JSON for those who want it."""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path

import pytest

from tests.e2e.procs import AlertbotProcess, http
from tests.helpers import payload_json

FIRING = "am-higherrorrate-nutrition-service-firing.json"


def first_line_on(terminal: int, *, within: float) -> str:
    """The first complete line written to the terminal (read from its other end)."""
    seen = b""
    deadline = time.monotonic() + within
    while b"\n" not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"nothing printed within {within}s: {seen!r}"
        ready, _, _ = select.select([terminal], [], [], left)
        if ready:
            seen += os.read(terminal, 65536)
    return seen.split(b"\n", 1)[0].decode().strip()


@pytest.mark.parametrize(("args", "readable"), [((), True), (("--log-format", "json"), False)])
def test_console_notifications_on_a_terminal(tmp_path: Path, args: tuple[str, ...], readable: bool) -> None:
    leader, follower = os.openpty()
    proc = AlertbotProcess(tmp_path / "a", {"routes": {"receivers": ["console"]}}, args=args, stdout=follower)
    try:
        proc.start()
        os.close(follower)
        status, _ = http("POST", f"{proc.url}/webhook/alertmanager", payload_json(FIRING))
        assert status == 200
        line = first_line_on(leader, within=20)
        if readable:
            assert line.startswith("[CRITICAL] HighErrorRate nutrition-service (incident 1): error_rate 7.2%")
        else:
            assert json.loads(line)["alertname"] == "HighErrorRate"
    finally:
        proc.close()
        os.close(leader)
