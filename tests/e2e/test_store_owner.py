"""One owner per SQLite file, with real ``alertbot serve`` processes: a second one on the same file
refuses to start (so the first one's outbox leases are never released under it), short-lived CLI
commands still work next to the daemon, and the lock goes with the process however it ends."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import AlertbotProcess, http

pytestmark = pytest.mark.e2e


def _config(tmp_path: Path) -> dict[str, Any]:
    return {"storage": {"url": f"sqlite:///{tmp_path}/store/alertbot.db"}, "runbooks": {"dir": str(tmp_path)}}


def _serve_once(workdir: Path, config_path: Path) -> subprocess.CompletedProcess[str]:
    """``alertbot serve`` expected to exit by itself (it refuses to start)."""
    return subprocess.run(
        [sys.executable, "-m", "alertbot", "serve", "--port", "0", "--config", str(config_path)],
        cwd=workdir,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_serve_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    """While one ``alertbot serve`` runs on a SQLite file, a second one on the same file exits 1 at once
    with a message naming the file, the holder's pid and the way out (PostgreSQL); the first keeps
    serving. ``runbook history`` still reads the store meanwhile."""
    config = _config(tmp_path)
    first = AlertbotProcess(tmp_path / "first", config)
    try:
        first.start()
        assert first.proc is not None
        second = _serve_once(tmp_path / "first", first.config_path)
        assert second.returncode == 1, second.stderr[-2000:]
        assert "already served by another alertbot process" in second.stderr
        assert f"pid {first.proc.pid}" in second.stderr
        assert "alertbot.db" in second.stderr and "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
        assert http("GET", first.url + "/readyz")[0] == 200

        history = subprocess.run(
            [sys.executable, "-m", "alertbot", "runbook", "history", "--config", str(first.config_path)],
            cwd=tmp_path / "first",
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert history.returncode == 0, history.stderr[-2000:]
    finally:
        first.close()


def test_owner_lock_goes_with_the_process(tmp_path: Path) -> None:
    """The lock is the kernel's: after the owner is killed with SIGKILL (no clean-up at all), or stops
    gracefully, the next ``alertbot serve`` on the file starts."""
    config = _config(tmp_path)
    first = AlertbotProcess(tmp_path / "first", config)
    second = AlertbotProcess(tmp_path / "second", config)
    try:
        first.start()
        first.stop(signal.SIGKILL)
        second.start()
        assert http("GET", second.url + "/readyz")[0] == 200
        assert second.stop() == 0
        first.start()
        assert http("GET", first.url + "/readyz")[0] == 200
    finally:
        first.close()
        second.close()
