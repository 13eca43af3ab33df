"""`alertbot runbook ...` as an on-call engineer runs it, against a fake Kubernetes API server."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest

from alertbot.bootstrap import make_executor, make_services
from alertbot.runbooks.k8s import Kubernetes, api_client
from alertbot.runbooks.loader import load_runbooks
from alertbot.services.roles import Actor
from alertbot.settings import load_config
from alertbot.store.engine import Store
from tests.e2e.procs import AlertbotProcess, http
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.prometheus import FakePrometheus
from tests.helpers import TEST_RUNBOOKS, alertbot_cli

ROOT = Path(__file__).resolve().parents[2]
KEY = ("ai-nutritionist", "nutrition-service-canary")
TARGET = ["-p", "namespace=ai-nutritionist", "-p", "virtualservice=nutrition-service-canary"]
PARAMS = dict(p.split("=", 1) for p in TARGET[1::2])
TOKEN = "runbook-cli-api-token-0123456789"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubernetes, dict[str, str]]]:
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    server = ThreadedServer(fake.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(server.url("")))
    (tmp_path / "alertbot.yaml").write_text(
        f"storage: {{url: 'sqlite:///{tmp_path}/a.db'}}\nrunbooks: {{dir: '{ROOT / 'runbooks'}'}}\n"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "ALERTBOT_CONFIG": str(tmp_path / "alertbot.yaml"),
        "USER": "alice",
    }
    yield fake, env
    server.close()


def alertbot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return alertbot_cli(*args, base=env)


def test_plan_execute_history_undo(cluster: tuple[FakeKubernetes, dict[str, str]]) -> None:
    """Dry run by default; --execute applies; history audits all; undo --execute restores 90/10."""
    fake, env = cluster
    planned = alertbot(env, "runbook", "run", "emergency-rollback", *TARGET)
    assert planned.returncode == 0, planned.stderr
    assert "http[0] (primary): stable 90 → 100, canary 10 → 0" in planned.stdout
    assert "planned — dry run: nothing was changed" in planned.stdout
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]

    executed = alertbot(env, "runbook", "run", "emergency-rollback", *TARGET, "--execute")
    assert executed.returncode == 0, executed.stderr
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    run_id = executed.stdout.strip().splitlines()[-1].split(":")[0].split()[1]

    again = alertbot(env, "runbook", "run", "emergency-rollback", *TARGET, "--execute")
    assert again.returncode == 0 and "noop — nothing to change" in again.stdout

    history = [json.loads(line) for line in alertbot(env, "runbook", "history", "--json").stdout.splitlines()]
    assert [h["status"] for h in history] == ["noop", "succeeded", "planned"]
    assert {h["trigger"] for h in history} == {"cli:alice"}

    undone = alertbot(env, "runbook", "undo", run_id, "--execute")
    assert undone.returncode == 0, undone.stderr
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


def test_failures_exit_1_and_bad_input_exits_2(cluster: tuple[FakeKubernetes, dict[str, str]]) -> None:
    fake, env = cluster
    fake.forbidden.add(("patch", "virtualservices"))
    failed = alertbot(env, "runbook", "run", "emergency-rollback", *TARGET, "--execute")
    assert failed.returncode == 1 and "needs RBAC permission to patch" in failed.stdout
    assert alertbot(env, "runbook", "run", "emergency-rollback", "-p", "namespace=x").returncode == 2
    assert alertbot(env, "runbook", "run", "no-such-runbook").returncode == 2
    assert alertbot(env, "runbook", "undo", "12345").returncode == 2


class Lines:
    """A process's stdout read line by line as it is written (a thread feeds a queue), so a test can
    see what was printed before the process ended."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._feed, args=(proc.stdout,), daemon=True).start()

    def _feed(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def until(self, prefix: str, within: float = 30.0) -> str:
        """The first line from now that starts with ``prefix`` (fails after ``within`` seconds)."""
        deadline = time.monotonic() + within
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01)).rstrip("\n")
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r} within {within}s; saw {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line


@pytest.mark.parametrize("via", ["store", "daemon"])
def test_each_step_is_printed_as_it_starts_and_ends(tmp_path: Path, via: str) -> None:
    """A rollback that waits for Prometheus says where it is while it waits, on the store the config
    names and through a daemon (`--url`), instead of printing everything at the end."""
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    prometheus = FakePrometheus([0.2])  # still failing until the test says otherwise
    kube_server, prom_server = ThreadedServer(fake.app), ThreadedServer(prometheus.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(kube_server.url("")))
    config = {
        "storage": {"url": f"sqlite:///{tmp_path}/a.db"},
        "runbooks": {"dir": str(TEST_RUNBOOKS)},
        "prometheus": {"url": prom_server.url("")},
        "kubernetes": {"kubeconfig": str(tmp_path / "kubeconfig")},
    }
    env = {**os.environ, "USER": "alice"}
    daemon = None
    if via == "daemon":
        daemon = AlertbotProcess(tmp_path / "d", config, {"ALERTBOT_API_TOKEN": TOKEN}).start()
        env |= {"ALERTBOT_URL": daemon.url, "ALERTBOT_API_TOKEN": TOKEN}
    else:
        (tmp_path / "alertbot.yaml").write_text(json.dumps(config))
        env["ALERTBOT_CONFIG"] = str(tmp_path / "alertbot.yaml")
    args = ["runbook", "run", "rollback-and-check", *TARGET, "--execute"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "alertbot", *args], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        lines = Lines(proc)
        assert "stable 90 → 100, canary 10 → 0" in lines.until("step 0 (istio.rollback) started: ")
        lines.until("step 0 (istio.rollback) done after ")
        lines.until("step 1 (prometheus.check) started: check: error_ratio < 0.01 within 60s")
        assert proc.poll() is None  # still waiting for Prometheus: the lines came as the steps ran
        assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
        if daemon is not None:  # a reload meanwhile neither waits for the run nor stops it
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert http("POST", f"{daemon.url}/-/reload", headers=auth) == (200, {"status": "reloaded"})
            assert proc.poll() is None

        prometheus.values = [0.0]
        lines.until("step 1 (prometheus.check) done after ")
        assert ": succeeded — applied: virtualservice ai-nutritionist" in lines.until("run ")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        if daemon is not None:
            daemon.close()
        kube_server.close()
        prom_server.close()


def test_a_pending_request_is_approved_from_the_cli(cluster: tuple[FakeKubernetes, dict[str, str]]) -> None:
    """Someone asked in Slack; an approver with a shell approves it with `alertbot runbook approve`."""
    fake, env = cluster
    config = load_config(Path(env["ALERTBOT_CONFIG"]))

    async def ask() -> int:
        store = await Store.open(config.storage.database_url())
        try:
            kube = Kubernetes(api_client(Path(env["KUBECONFIG"])))
            executor = make_executor(config, store, clock=lambda: datetime.now(UTC), kube=lambda: kube)
            services = make_services(config, store, executor, load_runbooks(config.runbooks.dir), clock=executor.now)
            runbook, params = services.approvals.prepare("emergency-rollback", PARAMS)
            proposal = await services.approvals.propose(Actor.slack("UREQ"), runbook, params)
            return proposal.run_id
        finally:
            await store.close()

    run_id = asyncio.run(ask())
    approved = alertbot(env, "runbook", "approve", str(run_id))
    assert approved.returncode == 0, approved.stderr
    lines = approved.stdout.splitlines()
    assert lines[0] == f"run {run_id} approved by cli:alice: running"
    assert lines[1].startswith("step 0 (istio.rollback) started: ")
    assert lines[-1].startswith(f"run {run_id}: succeeded")
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    again = alertbot(env, "runbook", "approve", str(run_id))
    assert again.returncode == 1 and f"run {run_id} is succeeded: nothing to approve" in again.stdout
