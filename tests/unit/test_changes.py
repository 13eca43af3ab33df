"""Correlating changes with pages, and judging watched objects' changes: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertbot.domain.changes import (
    Change,
    correlate,
    describe,
    describe_rollout,
    describe_shift,
    image_tag,
    last_manager,
    traffic_split,
    vs_service,
)
from alertbot.errors import RunbookError
from alertbot.runbooks.istio import plan_restore

STARTED = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=30)


def change(
    id_: int, minutes_before: float, *, service: str = "nutrition-service", namespace: str = "prod", **kw: str
) -> Change:
    return Change(
        id_,
        kw.get("kind", "deployment"),
        service,
        namespace,
        kw.get("version", "1.4.3"),
        kw.get("actor", "deploy-bot"),
        kw.get("description", ""),
        STARTED - timedelta(minutes=minutes_before),
    )


def test_the_window_is_the_lookback_before_the_start_inclusive() -> None:
    changes = [change(1, 30), change(2, 30.01), change(3, 0), change(4, -0.5)]
    assert [
        c.id
        for c in correlate(changes, service="nutrition-service", namespace="prod", started=STARTED, lookback=LOOKBACK)
    ] == [3, 1]


def test_newest_first_and_ties_by_arrival() -> None:
    changes = [change(1, 10), change(2, 3), change(3, 3), change(4, 20)]
    assert [
        c.id
        for c in correlate(changes, service="nutrition-service", namespace="prod", started=STARTED, lookback=LOOKBACK)
    ] == [3, 2, 1, 4]


def test_only_the_same_service_and_namespace() -> None:
    changes = [
        change(1, 5, service="grocery"),
        change(2, 5, namespace="staging"),
        change(3, 5, namespace=""),
        change(4, 5),
    ]
    assert [
        c.id
        for c in correlate(changes, service="nutrition-service", namespace="prod", started=STARTED, lookback=LOOKBACK)
    ] == [4, 3]
    assert correlate(changes, service="", namespace="prod", started=STARTED, lookback=LOOKBACK) == []


def test_describe_says_how_long_before_what_and_who() -> None:
    shift = change(1, 3, kind="traffic_shift", description="nutrition-service 1.4.3 → 10 % canary")
    assert describe(shift, STARTED) == "started 3 min after nutrition-service 1.4.3 → 10 % canary (by deploy-bot)"
    assert describe(change(2, 0.5), STARTED) == "started 30s after deployment nutrition-service 1.4.3 (by deploy-bot)"
    assert describe(change(3, 59.9), STARTED).startswith("started 59 min after")


def vs(*routes: list[tuple[str, int]]) -> dict[str, object]:
    http = [
        {"route": [{"destination": {"host": "nutrition-service", "subset": s}, "weight": w} for s, w in route]}
        for route in routes
    ]
    return {
        "metadata": {"name": "nutrition-service-canary"},
        "spec": {"hosts": ["nutrition-service.prod.svc"], "http": http},
    }


def test_weight_moves_are_described_and_unchanged_weights_are_no_change() -> None:
    before = traffic_split(vs([("stable", 90), ("canary", 10)]))
    after = traffic_split(vs([("stable", 50), ("canary", 50)]))
    assert describe_shift("nutrition-service-canary", before, after) == (
        "traffic nutrition-service-canary: canary 10 % → 50 %, stable 90 % → 50 %"
    )
    assert describe_shift("nutrition-service-canary", before, before) is None
    assert describe_shift("x", before, traffic_split(vs([("stable", 100)]))) == "traffic x: stable 90 % → 100 %"
    assert describe_shift("x", before, traffic_split(vs([("blue", 100)]))) == "traffic x: routes changed"


def test_rollouts_are_image_changes() -> None:
    assert describe_rollout("api", {"api": "r/api:1.4.2"}, {"api": "r/api:1.4.3"}) == (
        "rollout api: r/api:1.4.2 → r/api:1.4.3",
        "1.4.3",
    )
    assert describe_rollout("api", {"api": "r/api:1.4.2"}, {"api": "r/api:1.4.2"}) is None
    assert image_tag("registry:5000/team/api:2.0") == "2.0"
    assert image_tag("api@sha256:abc") == "api@sha256:abc"


def test_a_virtualservice_belongs_to_its_first_hosts_service() -> None:
    assert vs_service(vs([("stable", 100)])) == "nutrition-service"
    assert vs_service({"metadata": {"name": "edge"}, "spec": {"hosts": ["*"]}}) == "edge"
    assert (
        last_manager(
            {
                "metadata": {
                    "managedFields": [
                        {"manager": "kubectl", "time": "2026-11-29T10:00:00Z"},
                        {"manager": "argocd", "time": "2026-11-29T11:00:00Z"},
                    ]
                }
            }
        )
        == "argocd"
    )


def test_restore_plans_the_recorded_weights_and_refuses_a_changed_shape() -> None:
    now = vs([("stable", 50), ("canary", 50)])
    [restore] = plan_restore(now, [[["stable", 90], ["canary", 10]]])
    assert restore.describe() == "http[0]: stable 50 → 90, canary 50 → 10"
    assert plan_restore(now, [[["canary", 50], ["stable", 50]]]) == []
    with pytest.raises(RunbookError, match="routes to stable, canary now, to blue, green when last good"):
        plan_restore(now, [[["blue", 90], ["green", 10]]])
    with pytest.raises(RunbookError, match="has 1 HTTP routes, the last good record 2"):
        plan_restore(now, [[["stable", 100]], [["stable", 100]]])
