"""Traffic planning on VirtualService specs (pure), and the runbook schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from alertbot.errors import ConfigError, RunbookError
from alertbot.runbooks import istio
from alertbot.runbooks.loader import load_runbook, load_runbooks
from tests.fakes.kubernetes import apply_json_patch, seed_canary

ROOT = Path(__file__).resolve().parents[2]


def two_routes() -> dict[str, Any]:
    vs = seed_canary()
    vs["spec"]["http"].insert(
        0,
        {
            "name": "header-canary",
            "match": [{"headers": {"x-canary": {"exact": "1"}}}],
            "route": [{"destination": {"host": "nutrition-service", "subset": "canary"}}],
        },
    )
    vs["spec"]["http"].append(
        {
            "name": "mobile",
            "route": [
                {"destination": {"host": "nutrition-service", "subset": "canary"}, "weight": 50},
                {"destination": {"host": "nutrition-service", "subset": "stable"}, "weight": 50},
            ],
        }
    )
    return vs


def weights(vs: dict[str, Any]) -> list[list[int]]:
    return [[d.get("weight", 0) for d in http["route"]] for http in vs["spec"]["http"]]


def test_rollback_of_the_seed_canary() -> None:
    """90/10 → 100/0, described before → after."""
    changes = istio.plan_rollback(seed_canary(), "stable")
    assert [c.describe() for c in changes] == ["http[0] (primary): stable 90 → 100, canary 10 → 0"]
    patched = apply_json_patch(seed_canary(), istio.json_patch(changes))
    assert weights(patched) == [[100, 0]]


def test_rollback_touches_every_splitting_route_and_only_those() -> None:
    """A header-matched single-destination route is left alone; both splits go to stable."""
    vs = two_routes()
    changes = istio.plan_rollback(vs, "stable")
    assert [c.index for c in changes] == [1, 2]
    assert weights(apply_json_patch(vs, istio.json_patch(changes))) == [[0], [100, 0], [0, 100]]


def test_already_rolled_back_is_no_change() -> None:
    vs = apply_json_patch(seed_canary(), istio.json_patch(istio.plan_rollback(seed_canary(), "stable")))
    assert istio.plan_rollback(vs, "stable") == []


def test_missing_stable_subset_is_refused() -> None:
    with pytest.raises(RunbookError, match="subset 'prod' is not a destination of http\\[0\\] \\(primary\\)"):
        istio.plan_rollback(seed_canary(), "prod")


def test_patch_is_guarded_by_a_test_of_what_was_read() -> None:
    """If the route changed after it was read, applying the patch fails instead of overwriting."""
    patch = istio.json_patch(istio.plan_rollback(seed_canary(), "stable"))
    assert patch[0] == {"op": "test", "path": "/spec/http/0/route", "value": seed_canary()["spec"]["http"][0]["route"]}
    edited = copy.deepcopy(seed_canary())
    edited["spec"]["http"][0]["route"][1]["weight"] = 20
    edited["spec"]["http"][0]["route"][0]["weight"] = 80
    with pytest.raises(Exception, match="test operation"):
        apply_json_patch(edited, patch)


def test_reverse_patch_restores_the_before_state() -> None:
    changes = istio.plan_rollback(seed_canary(), "stable")
    after = apply_json_patch(seed_canary(), istio.json_patch(changes))
    assert apply_json_patch(after, istio.json_patch(changes, reverse=True)) == seed_canary()


def test_set_weights() -> None:
    changes = istio.plan_set_weights(seed_canary(), {"stable": 50, "canary": 50})
    assert [c.describe() for c in changes] == ["http[0] (primary): stable 90 → 50, canary 10 → 50"]
    with pytest.raises(RunbookError, match="sum to 110, not 100"):
        istio.plan_set_weights(seed_canary(), {"stable": 60, "canary": 50})
    with pytest.raises(RunbookError, match="no HTTP route routes only to the subsets blue, green"):
        istio.plan_set_weights(seed_canary(), {"blue": 50, "green": 50})


def test_shipped_runbooks_load() -> None:
    runbooks = load_runbooks(ROOT / "runbooks")
    assert {"emergency-rollback", "canary-promote", "scale-up", "restart"} <= set(runbooks)
    rollback = runbooks["emergency-rollback"]
    assert [(p.name, p.required, p.default) for p in rollback.params] == [
        ("namespace", True, None),
        ("virtualservice", True, None),
        ("stable_subset", False, "stable"),
        ("service", False, None),
    ]


def test_params_are_validated() -> None:
    rollback = load_runbook(ROOT / "runbooks" / "emergency-rollback.yaml")
    assert (
        rollback.resolve_params({"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"})[
            "stable_subset"
        ]
        == "stable"
    )
    with pytest.raises(ValueError, match="param virtualservice is required"):
        rollback.resolve_params({"namespace": "ai-nutritionist"})
    with pytest.raises(ValueError, match="does not match"):
        rollback.resolve_params({"namespace": "Bad_NS", "virtualservice": "x"})
    with pytest.raises(ValueError, match="unknown param replicas"):
        rollback.resolve_params({"namespace": "a", "virtualservice": "b", "replicas": "3"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nsteps: []\n", "steps: List should have at least 1 item"),
        ("name: x\nsteps:\n  - type: istio.explode\n", "steps[0]: Input tag 'istio.explode' found using 'type'"),
        ("name: x\nsteps:\n  - {type: wait, duration: 5s, extra: 1}\n", "steps[0].wait.extra: unknown key"),
        ("name: x\nsteps:\n  - {type: notify, message: 'hi {{ params.who }}'}\n", "uses undeclared param 'who'"),
        ("name: y\nsteps:\n  - {type: notify, message: hi}\n", "must match the file name 'x'"),
    ],
)
def test_bad_runbooks_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_runbook(path)
    assert str(path) in info.value.message and message in info.value.message


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (
            {"ownerReferences": [{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo"}]},
            ("flagger", "podinfo"),
        ),
        (
            {"ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"}]},
            ("argo-rollouts", "web"),
        ),
        ({"annotations": {"argo-rollouts.argoproj.io/managed-by-rollouts": "web"}}, ("argo-rollouts", "web")),
        ({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}]}, None),
        ({}, None),
    ],
)
def test_owning_controller(meta: dict[str, Any], expected: tuple[str, str] | None) -> None:
    """Flagger and Argo Rollouts are recognised by ownerReferences (or Argo's managed-by annotation)."""
    vs = {**seed_canary(), "metadata": {"name": "x", "namespace": "y", **meta}}
    found = istio.owning_controller(vs)
    assert (None if found is None else (found.kind, found.name)) == expected


def test_the_stable_subset_is_a_name_not_free_text() -> None:
    """emergency-rollback's stable_subset (which an automation may template from alert labels) must be
    a Kubernetes-style name: free text such as a mention or a path is refused before any plan."""
    rollback = load_runbook(ROOT / "runbooks" / "emergency-rollback.yaml")
    for bad in ("x y", "<!channel>", "../stable", "Stable"):
        with pytest.raises(ValueError, match="param stable_subset"):
            rollback.resolve_params({"namespace": "a", "virtualservice": "b", "stable_subset": bad})
