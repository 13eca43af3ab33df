"""Two ``alertbot serve`` replicas on one real PostgreSQL: an approval is decided once, whichever
replica each click reaches, and a signed Slack request is accepted once across the replicas."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alertbot.slack.verify import sign
from alertbot.store import runbook_runs
from alertbot.store.engine import sync_url
from tests.e2e.procs import AlertbotProcess, poll
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.postgres import PostgresServer
from tests.slack_client import ResponseUrl

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SECRET = "ha-signing-secret"
NS = "ai-nutritionist"
APPROVERS = ("UAPPROVER1", "UAPPROVER2")
TRIALS = 20
UNDONE = (0, TRIALS // 2, TRIALS - 1)  # trials whose run is then undone through the CLI


def canary(trial: int) -> str:
    """Each trial rolls back its own VirtualService (90/10 until then)."""
    return f"canary-{trial:02d}"


@dataclass
class Cluster:
    replicas: list[AlertbotProcess]
    kube: FakeKubernetes
    responses: ResponseUrl
    response_url: str
    engine: sa.Engine
    env: dict[str, str]
    config_path: Path


@pytest.fixture
def cluster(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Cluster]:
    kube, responses = FakeKubernetes(), ResponseUrl()
    for trial in range(TRIALS):
        vs = seed_canary()
        vs["metadata"]["name"] = canary(trial)
        kube.add_virtualservice(vs)
    kube_server, response_server = ThreadedServer(kube.app), ThreadedServer(responses.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(kube_server.url("")))
    url = postgres_server.new_database()
    config = {
        "storage": {"url": url},
        "runbooks": {"dir": str(ROOT / "runbooks")},
        "slack": {"runbook_approvers": list(APPROVERS)},
        "kubernetes": {"kubeconfig": str(tmp_path / "kubeconfig")},
    }
    env = {"ALERTBOT_SLACK_SIGNING_SECRET": SECRET}
    replicas = [AlertbotProcess(tmp_path / name, config, env=env) for name in ("a", "b")]
    engine = sa.create_engine(sync_url(url))
    try:
        for replica in replicas:
            replica.start()
        yield Cluster(
            replicas,
            kube,
            responses,
            response_server.url("/respond"),
            engine,
            {**replicas[0].env, "ALERTBOT_CONFIG": str(replicas[0].config_path), "USER": "oncall"},
            replicas[0].config_path,
        )
    finally:
        for replica in replicas:
            replica.close()
        engine.dispose()
        kube_server.close()
        response_server.close()


def signed_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def slack_headers(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(SECRET, stamp, body),
    }


def approve_body(user: str, run_id: int, response_url: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "response_url": response_url,
        "trigger_id": uuid.uuid4().hex,
        "actions": [{"action_id": "runbook_approve", "value": str(run_id)}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def request_rollback(cluster: Cluster, virtualservice: str) -> int:
    """A pending rollback with its dry-run plan, asked for as a person does: `/alertbot rollback` on a
    replica, which posts the plan to response_url; returns the run's id once that plan is posted."""
    posts_before = len(cluster.responses.posts)
    body = urllib.parse.urlencode(
        {
            "command": "/alertbot",
            "text": f"rollback {NS}/{virtualservice}",
            "user_id": "UREQUESTER",
            "response_url": cluster.response_url,
        }
    ).encode()
    status, _ = signed_post(f"{cluster.replicas[0].url}/slack/commands", body, slack_headers(body))
    assert status == 200

    def planned() -> int | None:
        with cluster.engine.connect() as conn:
            runs = runbook_runs.history(conn, limit=5)
        found = [r for r in runs if r.params.get("virtualservice") == virtualservice and r.plan]
        return found[0].id if found and found[0].status == "pending" else None

    run_id: int = poll(planned, within=15, what=f"the pending rollback of {virtualservice}")
    poll(lambda: len(cluster.responses.posts) > posts_before, within=10, what="the plan posted")
    return run_id


def record(engine: sa.Engine, run_id: int) -> runbook_runs.RunRecord:
    with engine.connect() as conn:
        found = runbook_runs.get(conn, run_id)
    assert found is not None
    return found


def test_concurrent_approvals_on_two_replicas_run_once(cluster: Cluster) -> None:
    """20 trials: two approvers click Approve on the same pending rollback at once, one on each replica.
    Each time exactly one click is told the run is running, the VirtualService is patched once, the
    audit record ends `succeeded` naming that approver (and only them), one message reports the
    outcome, and the record keeps what was applied, so `alertbot runbook undo` restores 90/10 (run
    through the CLI for the first, a middle and the last trial)."""
    replicas = cluster.replicas
    for trial in range(TRIALS):
        run_id = request_rollback(cluster, canary(trial))
        patches_before = len([p for p in cluster.kube.patches if not p["dry_run"]])
        posts_before = len(cluster.responses.posts)
        bodies = [approve_body(user, run_id, cluster.response_url) for user in APPROVERS]
        start = threading.Barrier(2)

        def click(index: int, bodies: list[bytes] = bodies, start: threading.Barrier = start) -> tuple[int, Any]:
            body = bodies[index]
            headers = slack_headers(body)
            start.wait(timeout=10)
            return signed_post(f"{replicas[index].url}/slack/interactions", body, headers)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(click, range(2)))
        assert [status for status, _ in answers] == [200, 200], answers
        running = [i for i, (_, body) in enumerate(answers) if ": running…" in (body or {}).get("text", "")]
        assert len(running) == 1, f"trial {trial}: {answers}"
        winner = f"slack:{APPROVERS[running[0]]}"

        def run_ended(run_id: int = run_id) -> bool:
            return record(cluster.engine, run_id).status not in ("pending", "approved", "running")

        done = poll(run_ended, within=30, what=f"run {run_id} to end")
        assert done
        final = record(cluster.engine, run_id)
        assert (final.status, final.approvals) == ("succeeded", [winner]), f"trial {trial}: {final}"
        assert final.applied, f"trial {trial}: the record lost what the run changed: {final}"
        assert len([p for p in cluster.kube.patches if not p["dry_run"]]) == patches_before + 1

        def outcome_posted(posts_before: int = posts_before) -> bool:
            return len(cluster.responses.posts) > posts_before

        poll(outcome_posted, within=10, what="the outcome message")
        reports = cluster.responses.posts[posts_before:]
        assert len(reports) == 1 and "succeeded" in reports[0]["text"], reports
        assert cluster.kube.weights(NS, canary(trial)) == [[("stable", 100), ("canary", 0)]]
        if trial not in UNDONE:
            continue
        undo = subprocess.run(
            [sys.executable, "-m", "alertbot", "runbook", "undo", str(run_id), "--execute"],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert undo.returncode == 0, f"trial {trial}: {undo.stdout} {undo.stderr}"
        assert cluster.kube.weights(NS, canary(trial)) == [[("stable", 90), ("canary", 10)]]

    with cluster.engine.connect() as conn:
        audited = runbook_runs.history(conn, limit=1000)
    assert len([r for r in audited if r.undo_of is None]) == TRIALS  # one record per approved run
    assert len([r for r in audited if r.undo_of is not None and r.status == "succeeded"]) == len(UNDONE)


def test_a_signed_request_replayed_to_the_other_replica_is_refused(cluster: Cluster) -> None:
    """A signed Slack request accepted by one replica is refused (401) when the same bytes and headers
    reach the other replica within the signing window: the replay record is shared through the store."""
    body = urllib.parse.urlencode(
        {"command": "/alertbot", "text": "help", "user_id": "UANYONE", "response_url": cluster.response_url}
    ).encode()
    headers = slack_headers(body)
    first, _ = signed_post(f"{cluster.replicas[0].url}/slack/commands", body, headers)
    assert first == 200
    again, answer = signed_post(f"{cluster.replicas[1].url}/slack/commands", body, headers)
    assert again == 401, answer
    assert answer["error"]["code"] == "unauthorized"
