"""/slack/commands and /slack/interactions: signed requests only, commands, and runbook approvals."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from alertbot.runbooks.k8s import Kubernetes, api_client
from tests.conftest import Harness, MakeHarness, Peers
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.helpers import wait_until
from tests.slack_client import SECRET, ResponseUrl, click, command, headers

KEY = ("ai-nutritionist", "nutrition-service-canary")
# The fake Kubernetes, the response_url receiver and its URL, the clock alertbot reads, and a harness
# factory taking slack settings.
SlackEnv = tuple[FakeKubernetes, ResponseUrl, str, dict[str, datetime], Callable[..., Awaitable[Harness]]]


@pytest.fixture
async def slack_env(aiohttp_server: AiohttpServer, tmp_path: Path, make_harness: MakeHarness) -> SlackEnv:
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    k8s_server = await aiohttp_server(fake.app)
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(str(k8s_server.make_url(""))))
    responses = ResponseUrl()
    response_server = await aiohttp_server(responses.app)
    clock = {"now": datetime.now(UTC)}

    async def make(**slack: Any) -> Harness:
        return await make_harness(
            {"slack": {"runbook_approvers": ["UAPPROVER", "UBOB"], "responders": ["UALICE"], **slack}},
            secret_values={"slack_signing_secret": SECRET},
            kube=lambda: Kubernetes(api_client(path)),
            clock=lambda: clock["now"],
        )

    return fake, responses, str(response_server.make_url("/respond")), clock, make


# --- signing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["forged", "missing", "stale", "future", "tampered", "malformed-ts"])
async def test_unsigned_or_badly_signed_requests_are_401(slack_env: SlackEnv, case: str) -> None:
    """Forged, missing, stale (or far-future), body-tampered and malformed requests: 401 JSON, no effect."""
    *_, make = slack_env
    h = await make()
    body = urllib.parse.urlencode({"text": "silence service=x 1h", "user_id": "U1"}).encode()
    hdrs = {
        "forged": headers(body, secret="not-the-secret"),
        "missing": {"Content-Type": "application/x-www-form-urlencoded"},
        "stale": headers(body, ts=int(time.time()) - 301),
        "future": headers(body, ts=int(time.time()) + 301),
        "tampered": headers(b"text=help&user_id=U1"),
        "malformed-ts": {**headers(body), "X-Slack-Request-Timestamp": "yesterday"},
    }[case]
    resp = await h.client.post("/slack/commands", data=body, headers=hdrs)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    assert await (await h.client.get("/api/v1/silences")).json() == []


async def test_replayed_request_is_401(slack_env: SlackEnv) -> None:
    *_, make = slack_env
    h = await make()
    body = urllib.parse.urlencode({"text": "help", "user_id": "U1"}).encode()
    hdrs = headers(body)
    assert (await h.client.post("/slack/commands", data=body, headers=hdrs)).status == 200
    assert (await h.client.post("/slack/commands", data=body, headers=hdrs)).status == 401


async def test_without_a_signing_secret_everything_is_refused(make_harness: MakeHarness) -> None:
    h = await make_harness()
    body = b"text=help"
    resp = await h.client.post("/slack/commands", data=body, headers=headers(body))
    assert resp.status == 401 and "SIGNING_SECRET is not configured" in (await resp.json())["error"]["message"]


# --- commands -----------------------------------------------------------------------------------


async def test_help_and_unknown_commands_answer_with_usage(slack_env: SlackEnv) -> None:
    *_, make = slack_env
    h = await make()
    assert "`/alertbot` commands" in (await command(h, "help"))["text"]
    unknown = await command(h, "reboot everything")
    assert unknown["response_type"] == "ephemeral" and "I don't know `reboot everything`" in unknown["text"]


async def test_status_lists_firing_incidents_by_severity(slack_env: SlackEnv) -> None:
    *_, make = slack_env
    h = await make()
    await h.post_file("am-servicedown-recipe-service-firing.json")
    await h.post_file("am-higherrorrate-ai-coach-firing.json")
    text = (await command(h, "status"))["text"]
    assert text.index("*critical* (1)") < text.index("*warning* (1)")
    assert "ServiceDown recipe-service" in text
    assert "<https://runbooks.example.com/alertbot/service-down|runbook>" in text
    assert "nothing is firing for grocery" in (await command(h, "status grocery"))["text"]


async def test_silence_from_slack_mutes_matching_alerts(slack_env: SlackEnv) -> None:
    *_, make = slack_env
    h = await make()
    answer = await command(h, "silence service=recipe-service 2h")
    assert answer["response_type"] == "in_channel" and 'silenced `service="recipe-service"` for 2h' in answer["text"]
    await h.post_file("am-servicedown-recipe-service-firing.json")
    incident = (await (await h.client.get("/api/v1/incidents")).json())[0]
    assert incident["suppressed_by"].startswith("silence 1 by slack:UALICE")
    assert ":warning:" in (await command(h, "silence service=x forever"))["text"]


async def test_runbook_list(slack_env: SlackEnv) -> None:
    *_, make = slack_env
    h = await make()
    text = (await command(h, "runbook list"))["text"]
    assert "`emergency-rollback` [low]" in text and "namespace*" in text and "stable_subset=stable" in text


# --- approvals ----------------------------------------------------------------------------------


async def plan_rollback(h: Harness, responses: ResponseUrl, url: str) -> int:
    first = await command(h, "rollback ai-nutritionist/nutrition-service-canary", response_url=url)
    assert first["response_type"] == "ephemeral" and first["text"].startswith("Planning `emergency-rollback`")
    await wait_until(lambda: len(responses.posts) == 1, what="the plan posted to response_url")
    plan = responses.posts[0]
    assert "stable 90 → 100, canary 10 → 0" in json.dumps(plan, ensure_ascii=False)
    buttons = plan["blocks"][2]["elements"]
    assert [b["action_id"] for b in buttons] == ["runbook_approve", "runbook_cancel"]
    return int(buttons[0]["value"])


async def test_rollback_is_planned_then_approved_once(slack_env: SlackEnv) -> None:
    """`/alertbot rollback ns/vs` → plan with buttons; an approver's click applies it (100/0) and the
    message is updated with the outcome and who approved; a second click runs nothing."""
    fake, responses, url, _clock, make = slack_env
    h = await make()
    run_id = await plan_rollback(h, responses, url)
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    answer = await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url)
    assert answer["replace_original"] is True and "approved by <@UAPPROVER>" in answer["text"]
    await h.slack.idle()
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    assert "succeeded" in responses.posts[-1]["text"] and "<@UAPPROVER>" in responses.posts[-1]["text"]
    again = await click(h, "runbook_approve", run_id, user="UBOB", response_url=url)
    assert "nothing to approve" in again["text"]
    assert len([p for p in fake.patches if not p["dry_run"]]) == 1


async def test_only_approvers_and_not_the_requester(slack_env: SlackEnv) -> None:
    fake, responses, url, _clock, make = slack_env
    h = await make()
    run_id = await plan_rollback(h, responses, url)
    refused = await click(h, "runbook_approve", run_id, user="UMALLORY", response_url=url)
    assert "may not approve" in refused["text"] and refused["replace_original"] is False
    self_approval = await click(h, "runbook_approve", run_id, user="UALICE", response_url=url)
    assert "may not approve" in self_approval["text"]
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


async def test_self_approval_needs_the_setting(slack_env: SlackEnv) -> None:
    _fake, responses, url, _clock, make = slack_env
    h = await make(runbook_approvers=["UALICE"])
    run_id = await plan_rollback(h, responses, url)
    refused = await click(h, "runbook_approve", run_id, user="UALICE", response_url=url)
    assert "someone else must approve" in refused["text"]


async def test_cancel_discards_the_plan(slack_env: SlackEnv) -> None:
    fake, responses, url, _clock, make = slack_env
    h = await make()
    run_id = await plan_rollback(h, responses, url)
    cancelled = await click(h, "runbook_cancel", run_id, user="UALICE", response_url=url)
    assert "cancelled by <@UALICE>" in cancelled["text"]
    late = await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url)
    assert "is cancelled" in late["text"]
    assert fake.patches == [p for p in fake.patches if p["dry_run"]]


async def test_pending_approval_expires(slack_env: SlackEnv) -> None:
    fake, responses, url, clock, make = slack_env
    h = await make()
    run_id = await plan_rollback(h, responses, url)
    clock["now"] = clock["now"] + timedelta(minutes=16)
    late = await click(
        h, "runbook_approve", run_id, user="UAPPROVER", response_url=url, ts=int(clock["now"].timestamp())
    )
    assert "is expired" in late["text"]
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


async def test_bad_runbook_requests_answer_helpfully(slack_env: SlackEnv) -> None:
    *_, make = slack_env
    h = await make()
    assert "no runbook `nope`" in (await command(h, "runbook run nope"))["text"]
    assert (
        "param virtualservice is required"
        in (await command(h, "runbook run emergency-rollback namespace=ai-nutritionist"))["text"]
    )
    assert "I don't know" in (await command(h, "rollback not-a-target"))["text"]


async def test_ack_and_resolve_from_slack_reach_pagerduty_and_the_message(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """`ack 1` → PagerDuty acknowledge (same dedup key), the Slack message says who; `resolve 1` →
    PagerDuty resolve, the message resolved in place; Alertmanager's later resolve changes nothing."""
    h = await make_harness(peers.config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file("am-higherrorrate-nutrition-service-firing.json")
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1 and len(peers.slack.roots()) == 1, what="page")
    (message,) = peers.slack.roots()

    acked = await command(h, "ack 1")
    assert acked["response_type"] == "in_channel" and "acknowledged incident 1" in acked["text"]
    await wait_until(lambda: any(e["event_action"] == "acknowledge" for e in peers.pagerduty.events), what="ack")
    ack = next(e for e in peers.pagerduty.events if e["event_action"] == "acknowledge")
    assert ack["dedup_key"] == peers.pagerduty.triggers()[0]["dedup_key"]
    await wait_until(lambda: "acknowledged by <@UALICE>" in json.dumps(message.blocks), what="message updated")
    assert "already acknowledged" in (await command(h, "ack 1"))["text"]

    resolved = await command(h, "resolve 1")
    assert "resolved incident 1" in resolved["text"]
    await wait_until(
        lambda: len(peers.pagerduty.resolves()) == 1 and message.text.startswith("[RESOLVED]"),
        what="resolve on both channels",
    )
    incident = await (await h.client.get("/api/v1/incidents/1")).json()
    assert (incident["status"], incident["resolved_by"]) == ("resolved", "slack:UALICE")

    await h.post_file("am-higherrorrate-nutrition-service-resolved.json")
    await h.dispatcher.deliver_due("pagerduty")
    assert len(peers.pagerduty.resolves()) == 1
    assert "no incident 99" in (await command(h, "ack 99"))["text"]
    assert "is resolved: nothing to resolve" in (await command(h, "resolve 1"))["text"]


async def test_alert_message_buttons_ack_and_silence(make_harness: MakeHarness, peers: Peers) -> None:
    """The alert's Slack message carries Ack / Resolve / Silence 1h; clicking them works like the commands."""
    h = await make_harness(peers.config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file("am-servicedown-recipe-service-firing.json")
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="Slack message")
    (message,) = peers.slack.roots()
    actions = next(b for b in message.blocks if b.get("block_id") == "incident-1")
    assert [e["action_id"] for e in actions["elements"]] == ["incident_ack", "incident_resolve", "incident_silence_1h"]

    acked = await click(h, "incident_ack", 1, user="UBOB", response_url="")
    assert "acknowledged incident 1" in acked["text"] and acked["replace_original"] is False
    silenced = await click(h, "incident_silence_1h", 1, user="UBOB", response_url="")
    assert 'alertname="ServiceDown"' in silenced["text"] and "for 1h" in silenced["text"]
    silences = await (await h.client.get("/api/v1/silences")).json()
    assert silences[0]["matchers"] == [
        'alertname="ServiceDown"',
        'service="recipe-service"',
        'namespace="ai-nutritionist"',
    ]


async def test_approvers_may_be_a_user_group(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    """slack.runbook_approvers: ["S…"] → members of that user group (asked of Slack) may approve."""
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    k8s_server = await aiohttp_server(fake.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(str(k8s_server.make_url(""))))
    peers.slack.usergroups["SONCALL"] = ["UBOB"]
    responses = ResponseUrl()
    url = str((await aiohttp_server(responses.app)).make_url("/respond"))
    h = await make_harness(
        {**peers.config, "slack": {**peers.config["slack"], "runbook_approvers": ["SONCALL"]}},
        secret_values={**peers.secret_values, "slack_signing_secret": SECRET},
        kube=lambda: Kubernetes(api_client(tmp_path / "kubeconfig")),
    )
    run_id = await plan_rollback(h, responses, url)
    refused = await click(h, "runbook_approve", run_id, user="UMALLORY", response_url=url)
    assert "may not approve" in refused["text"]
    approved = await click(h, "runbook_approve", run_id, user="UBOB", response_url=url)
    assert "approved by <@UBOB>" in approved["text"]
    await h.slack.idle()
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]


async def test_high_risk_runbooks_need_two_approvers(slack_env: SlackEnv) -> None:
    """canary-promote is risk: high — one approval is not enough, the same person twice is not two."""
    fake, responses, url, _clock, make = slack_env
    h = await make()
    await command(
        h,
        "runbook run canary-promote namespace=ai-nutritionist virtualservice=nutrition-service-canary "
        "canary_weight=50 stable_weight=50",
        response_url=url,
    )
    await wait_until(lambda: len(responses.posts) == 1, what="the plan")
    run_id = int(responses.posts[0]["blocks"][2]["elements"][0]["value"])
    first = await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url)
    assert "one more approver needed" in first["text"]
    twice = await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url)
    assert "you already approved" in twice["text"]
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    second = await click(h, "runbook_approve", run_id, user="UBOB", response_url=url)
    assert "approved by <@UAPPROVER> and <@UBOB>" in second["text"]
    await h.slack.idle()
    assert fake.weights(*KEY) == [[("stable", 50), ("canary", 50)]]
