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
from aiohttp import web

from tests.e2e.procs import AlertbotProcess, free_port, http
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.helpers import alertbot_cli, payload_json

TOKEN = "remote-cli-api-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]
FIRING = "am-higherrorrate-nutrition-service-firing.json"
KEY = ("ai-nutritionist", "nutrition-service-canary")
TARGET = ["-p", "namespace=ai-nutritionist", "-p", "virtualservice=nutrition-service-canary"]


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
    remote = ["--url", daemon.url, "--token", TOKEN]
    added = cli(*remote, "silence", "add", 'service="grocery"', "-d", "1h", "--json", cwd=elsewhere)
    assert added.returncode == 0, added.stderr
    silence = json.loads(added.stdout)
    assert silence["created_by"].startswith("cli:")
    env = {"ALERTBOT_URL": daemon.url, "ALERTBOT_API_TOKEN": TOKEN}
    listed = cli("silence", "list", "--json", cwd=elsewhere, env=env)
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


def test_runbooks_and_decisions_through_the_daemon(tmp_path: Path) -> None:
    """`runbook list|run|history|undo` and `decisions` with --url: the daemon's runbooks, cluster and
    audit log, from a directory with no config, as the user who ran the CLI."""
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    cluster = ThreadedServer(fake.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(cluster.url("")))
    config = {
        "mode": "shadow",
        "routes": {"receivers": ["console"]},
        "kubernetes": {"kubeconfig": str(tmp_path / "kubeconfig")},
        "runbooks": {"dir": str(ROOT / "runbooks")},
    }
    proc = AlertbotProcess(tmp_path / "d", config, {"ALERTBOT_API_TOKEN": TOKEN}).start()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"ALERTBOT_URL": proc.url, "ALERTBOT_API_TOKEN": TOKEN, "USER": "alice"}
    try:
        listed = cli("runbook", "list", "--json", cwd=elsewhere, env=env)
        assert "emergency-rollback" in [json.loads(line)["name"] for line in listed.stdout.splitlines()]

        executed = cli("runbook", "run", "emergency-rollback", *TARGET, "--execute", cwd=elsewhere, env=env)
        assert executed.returncode == 0, executed.stderr
        assert executed.stdout.splitlines()[0].startswith("step 0 (istio.rollback) started: ")
        run_id = executed.stdout.splitlines()[-1].split(":")[0].removeprefix("run ")
        assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]

        history = cli("runbook", "history", "--json", cwd=elsewhere, env=env)
        assert [(h["id"], h["trigger"]) for h in map(json.loads, history.stdout.splitlines())] == [
            (int(run_id), "cli:alice")
        ]
        planned = cli("runbook", "undo", run_id, cwd=elsewhere, env=env)
        assert planned.returncode == 0 and "undo: virtualservice" in planned.stdout
        undone = cli("runbook", "undo", run_id, "--execute", cwd=elsewhere, env=env)
        assert undone.returncode == 0, undone.stdout + undone.stderr
        assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
        bad = cli("runbook", "undo", "999", cwd=elsewhere, env=env)
        assert bad.returncode == 2 and "alertbot answered 404: no run 999" in bad.stderr

        status, _ = http("POST", f"{proc.url}/webhook/alertmanager", payload_json(FIRING))
        assert status == 200
        decisions = cli("decisions", cwd=elsewhere, env=env)
        assert decisions.returncode == 0, decisions.stderr
        assert "would notify console (HighErrorRate nutrition-service)" in decisions.stdout
        assert list(elsewhere.iterdir()) == []
    finally:
        proc.close()
        cluster.close()


def test_an_answer_that_is_not_alertbots_is_a_clear_error(tmp_path: Path) -> None:
    """A login page or a redirect in front of the daemon: said so, no traceback, the token never
    sent on to where a redirect points, and a POST never turned into a GET."""
    seen: list[tuple[str, str, str | None]] = []

    async def login_page(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path, request.headers.get("Authorization")))
        if request.path.startswith("/moved"):
            raise web.HTTPFound("/elsewhere/api/v1/runs")
        return web.Response(text="<html>please sign in</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", login_page)
    server = ThreadedServer(app)
    try:
        for base, expected in ((server.url(""), "did not answer with JSON"), (server.url("/moved"), "not followed")):
            env = {"ALERTBOT_URL": base, "ALERTBOT_API_TOKEN": TOKEN}
            for args in (["runbook", "run", "emergency-rollback", *TARGET, "--execute"], ["incidents", "list"]):
                answer = cli(*args, cwd=tmp_path, env=env)
                assert answer.returncode in (1, 2) and expected in answer.stderr, answer.stderr
                assert "Traceback" not in answer.stderr
    finally:
        server.close()
    assert seen and not any(path.startswith("/elsewhere") for _, path, _ in seen)  # the redirect was not followed
    assert ("POST", "/moved/api/v1/runs", f"Bearer {TOKEN}") in seen
