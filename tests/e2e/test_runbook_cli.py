"""`alertbot runbook ...` as an on-call engineer runs it, against a fake Kubernetes API server."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.helpers import alertbot_cli

ROOT = Path(__file__).resolve().parents[2]
KEY = ("ai-nutritionist", "nutrition-service-canary")
TARGET = ["-p", "namespace=ai-nutritionist", "-p", "virtualservice=nutrition-service-canary"]


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
