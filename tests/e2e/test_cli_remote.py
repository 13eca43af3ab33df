"""The CLI talking to a running daemon (`--url` / ALERTBOT_URL, `--token` / ALERTBOT_API_TOKEN):
from any directory, without the daemon's config or database, silences and incidents go through its
HTTP API and land where the daemon sees them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import AlertbotProcess, free_port, http
from tests.helpers import alertbot_cli, payload_json

TOKEN = "remote-cli-api-token-0123456789"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[AlertbotProcess]:
    proc = AlertbotProcess(tmp_path / "a", {"routes": {"receivers": ["console"]}}, {"ALERTBOT_API_TOKEN": TOKEN})
    try:
        yield proc.start()
    finally:
        proc.close()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with none of this environment's ALERTBOT_* settings: only what the test gives."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALERTBOT_")}
    return alertbot_cli(*args, cwd=cwd, env=env, base=clean)


def test_silences_and_incidents_through_the_daemon(daemon: AlertbotProcess, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    added = cli("--url", daemon.url, "--token", TOKEN, "silence", "add", 'service="grocery"', "-d", "1h", cwd=elsewhere)
    assert added.returncode == 0, added.stderr
    silence = json.loads(added.stdout)
    assert silence["created_by"].startswith("cli:")
    env = {"ALERTBOT_URL": daemon.url, "ALERTBOT_API_TOKEN": TOKEN}
    listed = cli("silence", "list", cwd=elsewhere, env=env)
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [silence["id"]]
    _, via_api = http("GET", f"{daemon.url}/api/v1/silences", headers={"Authorization": f"Bearer {TOKEN}"})
    assert [s["id"] for s in via_api] == [silence["id"]]  # the daemon's own store has it
    assert list(elsewhere.iterdir()) == []  # and no database appeared here

    status, _ = http(
        "POST", f"{daemon.url}/webhook/alertmanager", payload_json("am-higherrorrate-nutrition-service-firing.json")
    )
    assert status == 200
    firing = cli("incidents", "list", 'service="nutrition-service"', cwd=elsewhere, env=env)
    assert firing.returncode == 0, firing.stderr
    (line,) = firing.stdout.splitlines()
    assert line.split("  ")[1:5] == ["firing", "critical", "HighErrorRate", "nutrition-service"]
    as_json = cli("incidents", "list", "--json", 'severity=~"crit.*"', cwd=elsewhere, env=env)
    assert [json.loads(x)["alertname"] for x in as_json.stdout.splitlines()] == ["HighErrorRate"]
    assert cli("incidents", "list", 'service="grocery"', cwd=elsewhere, env=env).stdout == ""

    expired = cli("silence", "expire", str(silence["id"]), cwd=elsewhere, env=env)
    assert expired.returncode == 0, expired.stderr
    assert cli("silence", "list", cwd=elsewhere, env=env).stdout == ""
    again = cli("silence", "expire", str(silence["id"]), cwd=elsewhere, env=env)
    assert again.returncode == 2 and "alertbot answered 404" in again.stderr


def test_a_wrong_token_or_no_daemon_is_a_clear_error(daemon: AlertbotProcess, tmp_path: Path) -> None:
    wrong = cli("--url", daemon.url, "--token", "not-the-token", "silence", "list", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "alertbot answered 401" in wrong.stderr and "ALERTBOT_API_TOKEN" in wrong.stderr
    assert "not-the-token" not in wrong.stderr + wrong.stdout
    nobody = f"http://127.0.0.1:{free_port()}"
    gone = cli("--url", nobody, "incidents", "list", cwd=tmp_path)
    assert gone.returncode == 1 and f"cannot reach alertbot at {nobody}" in gone.stderr
