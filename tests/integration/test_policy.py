"""The policy layer seen from outside: roles in Slack (slash commands and buttons), silence limits on
every door (Slack, HTTP API, CLI), announcements, and approvals that show — and run — exactly the
plan, posted in the alert's thread and cancelled when the alert resolves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from alertbot.runbooks.k8s import Kubernetes, api_client
from alertbot.store import runbook_runs
from tests.conftest import ROOT, SLACK_TOKEN, Harness, MakeHarness, Peers
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.slack import FakeSlack, Message
from tests.helpers import alertbot_cli, payload_json, wait_until
from tests.slack_client import SECRET, ResponseUrl, click, command

FIRING = "am-higherrorrate-nutrition-service-firing.json"
RESOLVED = "am-higherrorrate-nutrition-service-resolved.json"
KEY = ("ai-nutritionist", "nutrition-service-canary")
ROLLBACK = {
    "name": "rollback-canary",
    "match": {"severity": "critical", "canary": "true"},
    "runbook": "emergency-rollback",
    "mode": "approve",
    "params": {"namespace": "{{ labels.namespace }}", "virtualservice": "{{ labels.virtualservice }}"},
    "targets": ["ai-nutritionist/*"],  # its target comes from alert labels: allow-listed
}


async def _harness(make_harness: MakeHarness, peers: Peers, **slack: Any) -> Harness:
    config = {**peers.config, "slack": {**peers.config["slack"], **slack}}
    return await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})


async def _incident(h: Harness, incident_id: int = 1) -> dict[str, Any]:
    resp = await h.client.get(f"/api/v1/incidents/{incident_id}")
    result: dict[str, Any] = await resp.json()
    return result


async def _silences(h: Harness) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await (await h.client.get("/api/v1/silences")).json()
    return result


# --- roles --------------------------------------------------------------------------------------


async def test_outsider_commands_are_refused_and_change_nothing(make_harness: MakeHarness, peers: Peers) -> None:
    """A user in neither slack.responders nor slack.runbook_approvers: silence, ack and resolve get an
    ephemeral refusal naming slack.responders; no silence, the incident still firing and unacked."""
    h = await _harness(make_harness, peers, responders=["UBOB"])
    await h.post_file(FIRING)
    for text in ("silence service=nutrition-service 1h", "ack 1", "resolve 1"):
        answer = await command(h, text, user="UMALLORY")
        assert answer["response_type"] == "ephemeral", text
        assert "may not" in answer["text"] and "slack.responders" in answer["text"], text
    assert await _silences(h) == []
    incident = await _incident(h)
    assert (incident["status"], incident["acked_by"]) == ("firing", None)
    assert "acknowledged incident 1" in (await command(h, "ack 1", user="UBOB"))["text"]


async def test_outsider_buttons_are_refused(make_harness: MakeHarness, peers: Peers) -> None:
    """The Ack / Resolve / Silence 1h buttons check the same role; a refusal never replaces the alert."""
    h = await _harness(make_harness, peers, responders=["UBOB"])
    await h.post_file(FIRING)
    for action in ("incident_ack", "incident_resolve", "incident_silence_1h"):
        answer = await click(h, action, 1, user="UMALLORY", response_url="")
        assert answer["replace_original"] is False and "slack.responders" in answer["text"], action
    assert await _silences(h) == []
    incident = await _incident(h)
    assert (incident["status"], incident["acked_by"]) == ("firing", None)


@pytest.mark.parametrize(
    ("slack", "user", "allowed"),
    [
        ({}, "UALICE", False),  # default: empty responders — nobody
        ({"responders": []}, "UALICE", False),
        ({"responders": ["*"]}, "UANYONE", True),  # explicitly the whole workspace
        ({"responders": [], "runbook_approvers": ["UAPPROVER"]}, "UAPPROVER", True),  # approvers respond too
        ({"responders": ["SONCALL"]}, "UBOB", True),  # a user group
        ({"responders": ["SONCALL"]}, "UMALLORY", False),
    ],
)
async def test_who_may_silence(
    make_harness: MakeHarness, peers: Peers, slack: dict[str, Any], user: str, allowed: bool
) -> None:
    """Roles: user IDs, user groups (asked of Slack), "*" for everyone; empty is nobody (fail closed)."""
    peers.slack.usergroups["SONCALL"] = ["UBOB"]
    base = {k: v for k, v in peers.config["slack"].items() if k != "responders"}
    config = {**peers.config, "slack": {**base, **slack}}
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    answer = await command(h, "silence service=grocery 1h", user=user)
    assert ("silenced" in answer["text"]) is allowed, answer["text"]
    assert len(await _silences(h)) == (1 if allowed else 0)


# --- silence limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": ["service=x"], "duration": "99999999999999w"}, "too long"),
        ({"matchers": ["service=x"], "duration": "520w"}, "at most 7d"),
        ({"matchers": ["service=x"], "duration": "8d"}, "silences.max_duration"),
        ({"matchers": ["service=x"], "ends_at": "9999-12-31T00:00:00Z"}, "silences.max_duration"),
        ({"matchers": ['alertname=~".+"'], "duration": "1h"}, '"force": true'),
        ({"matchers": ['alertname=~".*"', 'service=~".*"'], "duration": "1h"}, "every alert"),
        ({"matchers": ["service=x"], "duration": 1e300}, "too long"),
    ],
)
async def test_api_refuses_silences_beyond_the_limits(
    make_harness: MakeHarness, body: dict[str, Any], message: str
) -> None:
    """Oversized durations and match-everything silences are 400 (never 500, never an overflow)."""
    h = await make_harness()
    resp = await h.client.post("/api/v1/silences", json=body)
    assert resp.status == 400, await resp.text()
    assert message in (await resp.json())["error"]["message"]
    assert await _silences(h) == []


async def test_api_force_allows_a_match_everything_silence_and_the_limit_is_configurable(
    make_harness: MakeHarness,
) -> None:
    """ "force": true lets an operator silence everything on purpose; silences.max_duration is read."""
    h = await make_harness({"silences": {"max_duration": "30d"}})
    forced = await h.client.post(
        "/api/v1/silences", json={"matchers": ['alertname=~".+"'], "duration": "1h", "force": True}
    )
    assert forced.status == 201
    long = await h.client.post("/api/v1/silences", json={"matchers": ["service=x"], "duration": "10d"})
    assert long.status == 201
    assert (await h.client.post("/api/v1/silences", json={"matchers": ["a=b"], "duration": "31d"})).status == 400


async def test_slack_refuses_oversized_and_match_everything_silences(make_harness: MakeHarness, peers: Peers) -> None:
    """From Slack: a clear refusal for 9999999999w and for alertname=~".+" (no force from Slack)."""
    h = await _harness(make_harness, peers)
    huge = await command(h, "silence service=x 9999999999w")
    assert huge["response_type"] == "ephemeral" and "too long" in huge["text"]
    week = await command(h, "silence service=x 520w")
    assert "silences.max_duration" in week["text"]
    everything = await command(h, 'silence alertname=~".+" 1h')
    assert everything["response_type"] == "ephemeral" and "every alert" in everything["text"]
    assert await _silences(h) == []


CLI = [sys.executable, "-m", "alertbot"]


_cli = alertbot_cli


def test_cli_silence_limits_and_force(tmp_path: Path) -> None:
    """The CLI applies the same checks: exit 2 with the reason; --force for a match-everything silence."""
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{url: 'sqlite:///{tmp_path}/a.db'}}\n")
    huge = _cli("silence", "add", "service=x", "--duration", "99999999999999w", "--config", str(config))
    assert huge.returncode == 2 and "too long" in huge.stderr and "Traceback" not in huge.stderr
    everything = _cli("silence", "add", 'alertname=~".+"', "--config", str(config))
    assert everything.returncode == 2 and "--force" in everything.stderr
    forced = _cli("silence", "add", 'alertname=~".+"', "--force", "--by", "carol", "--json", "--config", str(config))
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["created_by"] == "carol"


async def test_every_new_silence_is_announced_in_the_critical_channel(make_harness: MakeHarness, peers: Peers) -> None:
    """Who, matchers and until when, in slack.channels.critical, for a silence from the API and from Slack;
    the author is recorded."""
    h = await _harness(make_harness, peers)
    resp = await h.client.post(
        "/api/v1/silences", json={"matchers": ["service=grocery"], "duration": "2h", "created_by": "deploy-bot"}
    )
    assert resp.status == 201
    await command(h, "silence service=<!channel> 1h", user="UBOB")
    critical = peers.slack.channel_ids["#alerts-critical"]

    def announced() -> list[str]:
        return [m.text for m in peers.slack.roots() if m.channel == critical and ":mute:" in m.text]

    await wait_until(lambda: len(announced()) == 2, what="two announcements")
    first, second = announced()
    assert "deploy-bot" in first and '`service="grocery"`' in first and "until" in first
    assert "<@UBOB>" in second and "<!channel>" not in second and "&lt;!channel&gt;" in second
    assert [s["created_by"] for s in await _silences(h)] == ["slack:UBOB", "deploy-bot"]


# --- approvals ----------------------------------------------------------------------------------


@pytest.fixture
async def cluster(aiohttp_server: AiohttpServer, tmp_path: Path) -> tuple[FakeKubernetes, Callable[[], Kubernetes]]:
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    server = await aiohttp_server(fake.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(str(server.make_url(""))))
    return fake, lambda: Kubernetes(api_client(tmp_path / "kubeconfig"))


async def _approve_harness(
    make_harness: MakeHarness, peers: Peers, kube: Callable[[], Kubernetes], **automation: Any
) -> tuple[Harness, Message]:
    config = {
        **peers.config,
        "slack": {**peers.config["slack"], "runbook_approvers": ["UAPPROVER"]},
        "automations": [{**ROLLBACK, **automation}],
        "runbooks": {"dir": str(ROOT / "runbooks")},
    }
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET}, kube=kube)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="the alert message")
    return h, peers.slack.roots()[0]


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"]]


async def test_approving_from_the_alert_shows_the_plan_in_the_thread_first(
    make_harness: MakeHarness, peers: Peers, cluster: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """ "Run emergency-rollback" on the alert message changes nothing yet: the runbook, the exact target
    and the dry-run plan are posted in the alert's thread with Approve / Cancel; the alert keeps its own
    buttons. Approving that plan applies it, and the outcome is posted in the thread."""
    fake, kube = cluster
    h, message = await _approve_harness(make_harness, peers, kube)
    run = next(b for b in _buttons(message.blocks) if b["action_id"] == "runbook_approve")
    answer = await click(
        h, "runbook_approve", int(run["value"]), user="UAPPROVER", response_url="",
        block_id="incident-1", message=(message.channel, message.ts),
    )  # fmt: skip
    assert answer["replace_original"] is False
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    await wait_until(lambda: len(peers.slack.replies(message.ts)) == 1, what="the plan in the thread")
    plan = peers.slack.replies(message.ts)[0]
    shown = json.dumps(plan.blocks, ensure_ascii=False)
    assert "emergency-rollback" in shown and "ai-nutritionist/nutrition-service-canary" in shown
    assert "stable 90 → 100, canary 10 → 0" in shown
    approve = next(b for b in _buttons(plan.blocks) if b["action_id"] == "runbook_approve")
    assert [b["action_id"] for b in _buttons(message.blocks)][:3] == [
        "incident_ack",
        "incident_resolve",
        "incident_silence_1h",
    ]

    done = await click(
        h, "runbook_approve", int(approve["value"]), user="UAPPROVER", response_url="",
        message=(message.channel, plan.ts),
    )  # fmt: skip
    assert "approved by <@UAPPROVER>" in done["text"]
    await h.slack.idle()
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]


async def test_a_changed_target_is_replanned_not_applied(
    aiohttp_server: AiohttpServer,
    make_harness: MakeHarness,
    peers: Peers,
    cluster: tuple[FakeKubernetes, Callable[[], Kubernetes]],
) -> None:
    """The VirtualService changes between the plan and the click: nothing is applied; the new plan is
    posted to be approved again, and approving that one applies it."""
    fake, kube = cluster
    responses = ResponseUrl()
    url = str((await aiohttp_server(responses.app)).make_url("/respond"))
    config = {**peers.config, "slack": {**peers.config["slack"], "runbook_approvers": ["UAPPROVER"]}}
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET}, kube=kube)
    await command(h, "rollback ai-nutritionist/nutrition-service-canary", response_url=url)
    await wait_until(lambda: len(responses.posts) == 1, what="the plan")
    run_id = int(responses.posts[0]["blocks"][2]["elements"][0]["value"])
    fake.set_weights(*KEY, {"stable": 70, "canary": 30})

    answer = await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url)
    assert "replaced by run" in answer["text"]
    await wait_until(lambda: len(responses.posts) == 2, what="the new plan")
    assert "stable 70 → 100, canary 30 → 0" in json.dumps(responses.posts[1], ensure_ascii=False)
    assert fake.weights(*KEY) == [[("stable", 70), ("canary", 30)]]
    new_id = int(responses.posts[1]["blocks"][2]["elements"][0]["value"])
    assert "approved by" in (await click(h, "runbook_approve", new_id, user="UAPPROVER", response_url=url))["text"]
    await h.slack.idle()
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    assert "is cancelled" in (await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url))["text"]


async def _run_statuses(h: Harness) -> list[str]:
    records = await h.state.store.read(runbook_runs.history, 10)
    return [r.status for r in records]


async def test_a_pending_approval_is_cancelled_when_its_alert_resolves(
    make_harness: MakeHarness, peers: Peers, cluster: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """The alert resolves: its pending run is cancelled, the thread says so, and a late click runs nothing."""
    fake, kube = cluster
    h, message = await _approve_harness(make_harness, peers, kube)
    await h.post_file(RESOLVED)

    async def cancelled() -> bool:
        return await _run_statuses(h) == ["cancelled"]

    await wait_until(cancelled, what="the pending run cancelled")
    await wait_until(
        lambda: any("its alert resolved" in m.text for m in peers.slack.replies(message.ts)), what="thread note"
    )
    late = await click(h, "runbook_approve", 1, user="UAPPROVER", response_url="", block_id="incident-1")
    assert "is cancelled" in late["text"]
    assert fake.patches == []


async def test_keep_after_resolve_keeps_the_approval(
    make_harness: MakeHarness, peers: Peers, cluster: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """keep_after_resolve: true — the request outlives its alert's resolve."""
    _fake, kube = cluster
    h, _message = await _approve_harness(make_harness, peers, kube, keep_after_resolve=True)
    await h.post_file(RESOLVED)
    await wait_until(lambda: peers.slack.roots()[0].text.startswith("[RESOLVED]"), what="resolve")
    await h.slack.cancel_resolved_approvals()
    assert await _run_statuses(h) == ["pending"]


# --- escaping -----------------------------------------------------------------------------------


async def test_status_escapes_alert_text(make_harness: MakeHarness, peers: Peers) -> None:
    """Alert-derived text in `status` cannot ping or link: & < > are escaped for mrkdwn."""
    h = await _harness(make_harness, peers)
    payload = payload_json(FIRING)
    payload["alerts"][0]["labels"]["service"] = "<!channel> & <https://evil.example|login>"
    await h.post_payload(json.dumps(payload))
    text = (await command(h, "status"))["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|login&gt;" in text


def test_cli_silence_is_announced_in_the_critical_channel(tmp_path: Path) -> None:
    """`alertbot silence add` with a bot token announces the silence in slack.channels.critical too."""
    slack = FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    server = ThreadedServer(slack.app)
    try:
        config = tmp_path / "c.yaml"
        config.write_text(
            f"storage: {{url: 'sqlite:///{tmp_path}/a.db'}}\nslack: {{api_url: '{server.url('/api/')}'}}\n"
        )
        added = subprocess.run(
            [*CLI, "silence", "add", "service=grocery", "-d", "2h", "--by", "carol", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "ALERTBOT_SLACK_BOT_TOKEN": SLACK_TOKEN},
        )
        assert added.returncode == 0, added.stderr
        (message,) = slack.roots()
        assert message.channel == slack.channel_ids["#alerts-critical"]
        assert "carol" in message.text and '`service="grocery"`' in message.text and "until" in message.text
    finally:
        server.close()


async def test_the_api_cannot_record_a_silence_as_a_slack_users(make_harness: MakeHarness, peers: Peers) -> None:
    """The author of an API silence is the name the caller gives, but never a Slack identity
    (`slack:U…`): those are recorded by alertbot from signed Slack requests only (400, nothing stored)."""
    h = await _harness(make_harness, peers)
    resp = await h.client.post(
        "/api/v1/silences", json={"matchers": ["service=grocery"], "duration": "2h", "created_by": "slack:UCEO"}
    )
    assert resp.status == 400
    assert "names a Slack user" in (await resp.json())["error"]["message"]
    assert await _silences(h) == []
