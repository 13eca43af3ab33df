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
    assert describe(shift, STARTED) == (
        "started 3 min after traffic shift: nutrition-service 1.4.3 → 10 % canary (by deploy-bot)"
    )
    assert describe(change(2, 0.5), STARTED) == "started 30s after deployment nutrition-service 1.4.3 (by deploy-bot)"
    assert describe(change(3, 59.9), STARTED).startswith("started 59 min after")


def test_a_description_is_added_to_service_kind_and_version_never_substituted() -> None:
    """The version is what on-call needs to decide on a rollback: a description never hides it."""
    canary = change(1, 0.825 / 60, version="1.4.3-rc7", description="canary at 10 %")
    assert describe(canary, STARTED) == (
        "started 825ms after deployment nutrition-service 1.4.3-rc7: canary at 10 % (by deploy-bot)"
    )
    # Named only once: what the description already says as a word of its own is not repeated.
    said = change(2, 2, version="1.4.3", description="nutrition-service 1.4.3 → 10 % canary")
    assert said.what() == "deployment: nutrition-service 1.4.3 → 10 % canary"
    # ...but a longer word that merely contains it does not count.
    other = change(3, 2, version="1.4.3", description="nutrition-service-canary 1.4.3-rc1 rolled back")
    assert other.what() == "deployment nutrition-service 1.4.3: nutrition-service-canary 1.4.3-rc1 rolled back"
    flag = change(4, 1, kind="feature_flag", version="", description="new-checkout on for 5 %")
    assert flag.what() == "feature flag nutrition-service: new-checkout on for 5 %"


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
        "nutrition-service-canary weights canary 10 % → 50 %, stable 90 % → 50 %"
    )
    assert describe_shift("nutrition-service-canary", before, before) is None
    assert describe_shift("x", before, traffic_split(vs([("stable", 100)]))) == "x weights stable 90 % → 100 %"
    assert describe_shift("x", before, traffic_split(vs([("blue", 100)]))) == "x routes changed"


def test_rollouts_are_image_changes() -> None:
    assert describe_rollout("api", {"api": "r/api:1.4.2"}, {"api": "r/api:1.4.3"}) == (
        "api image r/api:1.4.2 → r/api:1.4.3",
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
