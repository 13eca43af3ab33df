"""POST /api/v1/events (deployments, config changes) and events that arrive as alerts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MakeHarness

EVENT = {
    "kind": "deployment",
    "service": "nutrition-service",
    "namespace": "ai-nutritionist",
    "version": "1.4.3",
    "actor": "deploy-bot",
    "description": "nutrition-service 1.4.3 → 10 % canary",
    "timestamp": "2026-11-29T19:50:00Z",
    "links": [{"href": "https://ci.example.com/run/42", "text": "CI"}],
}


async def test_event_is_stored_and_listed(make_harness: MakeHarness) -> None:
    h = await make_harness()
    resp = await h.client.post("/api/v1/events", json=EVENT)
    assert resp.status == 201
    stored = await resp.json()
    assert (stored["kind"], stored["version"], stored["source"], stored["duplicate"]) == (
        "deployment",
        "1.4.3",
        "api",
        False,
    )
    listed = await (await h.client.get("/api/v1/events?service=nutrition-service")).json()
    assert [e["description"] for e in listed] == [EVENT["description"]]
    assert await (await h.client.get("/api/v1/events?service=grocery")).json() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"service": None}, "service: Field required"),
        ({"actor": ""}, "actor: String should have at least 1 character"),
        ({"kind": "reboot"}, "kind: Input should be 'deployment', 'config_change', 'feature_flag' or 'traffic_shift'"),
        ({"version": ""}, "version: required for a deployment"),
        ({"timestamp": "2026-11-29T19:50:00"}, "timestamp: must carry a timezone"),
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp: out of range"),  # was a 500
        ({"colour": "blue"}, "colour: unknown key"),
    ],
)
async def test_incomplete_events_are_400(make_harness: MakeHarness, change: dict[str, Any], message: str) -> None:
    h = await make_harness()
    body = {k: v for k, v in {**EVENT, **change}.items() if v is not None}
    resp = await h.client.post("/api/v1/events", json=body)
    assert resp.status == 400
    assert message in (await resp.json())["error"]["message"]


async def test_events_are_idempotent_by_id(make_harness: MakeHarness) -> None:
    h = await make_harness()
    first = await h.client.post("/api/v1/events", json={**EVENT, "id": "argo-7f3a"})
    again = await h.client.post("/api/v1/events", json={**EVENT, "id": "argo-7f3a"})
    assert (first.status, again.status) == (201, 200)
    assert (await again.json())["duplicate"] is True
    assert len(await (await h.client.get("/api/v1/events")).json()) == 1


async def test_events_need_the_api_token_when_set(make_harness: MakeHarness) -> None:
    h = await make_harness(secret_values={"api_token": "api-token"})
    assert (await h.client.post("/api/v1/events", json=EVENT)).status == 401
    ok = await h.client.post("/api/v1/events", json=EVENT, headers={"Authorization": "Bearer api-token"})
    assert ok.status == 201


async def test_deployment_alert_is_recorded_as_an_event(make_harness: MakeHarness) -> None:
    """DeploymentRolledOut (classified info) joins the change timeline; a repeat delivery does not add one."""
    h = await make_harness()
    for _ in range(2):
        await h.post_file("am-deploymentrolledout-nutrition-service-firing.json")
    events = await (await h.client.get("/api/v1/events")).json()
    assert [(e["kind"], e["service"], e["source"]) for e in events] == [
        ("deployment", "nutrition-service", "alertmanager")
    ]
    assert events[0]["description"] == "nutrition-service deployment rolled out"


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("2024-01-01T00:00:00", "since: must carry a timezone"),  # was a 500 from the store
        ("0001-01-01T00:00:00+14:00", "since: out of range"),
        ("yesterday", "since: not an ISO 8601 time"),
    ],
)
async def test_a_bad_since_is_400(make_harness: MakeHarness, since: str, message: str) -> None:
    """`GET /api/v1/events?since=` takes an ISO 8601 time with its timezone; anything else is a 400
    naming the parameter, never a 500."""
    h = await make_harness()
    resp = await h.client.get("/api/v1/events", params={"since": since})
    assert resp.status == 400
    assert message in (await resp.json())["error"]["message"]
