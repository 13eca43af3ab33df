"""Real processes for end-to-end tests: ``alertbot serve`` and Prometheus Alertmanager, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

REQUIRE_E2E = os.environ.get("ALERTBOT_REQUIRE_E2E") == "1"


def real_binary(*names: str, package: str, path: str | None = None) -> str:
    """The path of the first of ``names`` on PATH (or on ``path``); without one the test is skipped
    (failed under ALERTBOT_REQUIRE_E2E=1, as in CI). ``package``: how to install it."""
    for name in names:
        if found := shutil.which(name, path=path):
            return found
    install = package if " " in package else f"apt-get install {package}"
    message = f"{names[0]} not found ({install})"
    if REQUIRE_E2E:
        pytest.fail(message + "; ALERTBOT_REQUIRE_E2E=1 forbids skipping")
    pytest.skip(message)


def alertmanager_binary() -> str:
    return real_binary("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


T = TypeVar("T")


def poll(predicate: Callable[[], T | None], *, within: float, what: str, every: float = 0.05) -> T:
    """Call ``predicate`` until it returns something truthy (and return that); fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(every)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


class AlertbotProcess:
    """``alertbot serve`` in its own working directory; stdout (console notifier) and stderr to files."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        *,
        port: int = 0,
        args: tuple[str, ...] = (),
        stdout: int | None = None,
    ) -> None:
        """``args``: more `serve` options; ``stdout``: a file descriptor for stdout (e.g. a terminal)
        instead of a file."""
        self.workdir = workdir
        self.args = args
        self.stdout_fd = stdout
        self.fixed_port = port  # 0: any free port, new at each start
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "alertbot.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AlertbotProcess:
        self.runs += 1
        out = open(self.workdir / f"stdout.{self.runs}", "wb")  # noqa: SIM115 - owned by the child
        err = open(self.workdir / f"stderr.{self.runs}", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alertbot",
                "serve",
                "--port",
                str(self.fixed_port),
                "--config",
                str(self.config_path),
                *self.args,
            ],
            cwd=self.workdir,
            stdout=out if self.stdout_fd is None else self.stdout_fd,
            stderr=err,
            env=self.env,
        )
        out.close()
        err.close()
        self.port = poll(self._listening_port, within=30, what="alertbot to listen")
        return self

    def _listening_port(self) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"alertbot exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
        for line in self.stderr().splitlines():
            if '"listening"' in line:
                return int(json.loads(line)["port"])
        return None

    def stderr(self) -> str:
        return (self.workdir / f"stderr.{self.runs}").read_text(errors="replace")

    def notifications(self) -> list[dict[str, Any]]:
        """Console notifier lines from every run so far."""
        lines = []
        for run in range(1, self.runs + 1):
            path = self.workdir / f"stdout.{run}"
            lines += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return lines

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class BinaryProcess:
    """A real server binary on 127.0.0.1, its stderr in ``NAME.log`` in ``workdir``; ready when its
    ``/-/ready`` answers 200 (Alertmanager and Prometheus both serve it)."""

    def __init__(self, name: str, workdir: Path, command: list[str], port: int) -> None:
        self.name, self.workdir, self.port = name, workdir, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - owned by the child
        )
        poll(self._ready, within=30, what=f"{name} /-/ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
        try:
            return http("GET", f"{self.url}/-/ready")[0] == 200
        except OSError:
            return False

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class AlertmanagerProcess(BinaryProcess):
    """A single, non-clustered Alertmanager whose only receiver is alertbot's webhook."""

    def __init__(self, workdir: Path, webhook_url: str, *, token: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
        if token:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
        config = {
            "route": {
                "receiver": "alertbot",
                "group_by": ["alertname", "service"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "alertbot", "webhook_configs": [webhook]}],
        }
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        command = [
            alertmanager_binary(),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
        ]
        super().__init__("alertmanager", workdir, command, port)

    def post(self, alerts: list[dict[str, Any]]) -> None:
        status, body = http("POST", f"{self.url}/api/v2/alerts", alerts)
        assert status == 200, body


def am_alert(
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    *,
    starts_at: datetime,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": starts_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return alert
