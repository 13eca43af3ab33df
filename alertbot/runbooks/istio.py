"""Traffic changes on an Istio VirtualService, computed purely from the spec that was read.

A plan lists, per HTTP route it changes, the weights before and after. Its JSON patch begins, for
each changed route, with a ``test`` of that route's destinations exactly as read — so if someone
(or a controller) edited the route since, the API server refuses the whole patch (422) instead of
alertbot silently overwriting their change. Weights stay integers that sum to 100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alertbot.domain.jsontypes import KubeObject
from alertbot.errors import RunbookError
from alertbot.runbooks.k8s import JsonPatchOp


@dataclass(frozen=True)
class RouteChange:
    index: int
    name: str
    before: list[KubeObject]  # the route's destinations as read
    after: list[KubeObject]  # the same, with new weights

    def describe(self) -> str:
        label = f"http[{self.index}]" + (f" ({self.name})" if self.name else "")
        parts = [f"{_subset(b)} {_weight(b)} → {_weight(a)}" for b, a in zip(self.before, self.after, strict=True)]
        return f"{label}: " + ", ".join(parts)


def _subset(destination: Mapping[str, Any]) -> str:
    dest = destination.get("destination", {})
    return str(dest.get("subset") or dest.get("host", "?"))


def _weight(destination: Mapping[str, Any]) -> int:
    return int(destination.get("weight", 0))


def _http_routes(vs: Mapping[str, Any]) -> list[KubeObject]:
    routes = vs.get("spec", {}).get("http") or []
    if not isinstance(routes, list):
        raise RunbookError("the VirtualService has a malformed spec.http")
    return routes


def plan_rollback(vs: Mapping[str, Any], stable_subset: str) -> list[RouteChange]:
    """Every HTTP route that splits traffic: all of it to ``stable_subset``. Empty: nothing to do."""
    changes = []
    splitting = [(i, r) for i, r in enumerate(_http_routes(vs)) if len(r.get("route") or []) > 1]
    missing = []
    for index, http in splitting:
        dests = http["route"]
        stable = [j for j, d in enumerate(dests) if d.get("destination", {}).get("subset") == stable_subset]
        if not stable:
            missing.append(f"http[{index}]" + (f" ({http['name']})" if http.get("name") else ""))
            continue
        keep = stable[0]
        after = [{**d, "weight": 100 if j == keep else 0} for j, d in enumerate(dests)]
        if [_weight(d) for d in dests] != [_weight(d) for d in after]:
            changes.append(RouteChange(index, str(http.get("name", "")), dests, after))
    if missing:
        raise RunbookError(
            f"subset {stable_subset!r} is not a destination of {', '.join(missing)}: "
            "refusing to guess where stable traffic should go"
        )
    return changes


def plan_set_weights(vs: Mapping[str, Any], weights: Mapping[str, int]) -> list[RouteChange]:
    """Every HTTP route whose destinations are exactly subsets named in ``weights``: those weights."""
    for subset, weight in weights.items():
        if not 0 <= weight <= 100:
            raise RunbookError(f"weight of {subset} must be 0..100, got {weight}")
    changes = []
    matched = False
    for index, http in enumerate(_http_routes(vs)):
        dests = http.get("route") or []
        subsets = [d.get("destination", {}).get("subset") for d in dests]
        if not dests or not all(s in weights for s in subsets):
            continue
        matched = True
        total = sum(weights[str(s)] for s in subsets)
        if total != 100:
            raise RunbookError(f"http[{index}]: weights for {', '.join(map(str, subsets))} sum to {total}, not 100")
        after = [{**d, "weight": weights[str(s)]} for d, s in zip(dests, subsets, strict=True)]
        if [_weight(d) for d in dests] != [_weight(d) for d in after]:
            changes.append(RouteChange(index, str(http.get("name", "")), dests, after))
    if not matched:
        raise RunbookError(f"no HTTP route routes only to the subsets {', '.join(sorted(weights))}")
    return changes


def plan_restore(vs: Mapping[str, Any], recorded: list[list[list[Any]]]) -> list[RouteChange]:
    """Every HTTP route back to its recorded weights (``recorded``: per route, [destination, weight]
    pairs, destination = subset or host). A route whose destinations differ from the record is refused:
    the VirtualService changed shape since, and guessing would be worse than doing nothing."""
    routes = _http_routes(vs)
    if len(routes) != len(recorded):
        raise RunbookError(
            f"the VirtualService has {len(routes)} HTTP routes, the last good record {len(recorded)}: "
            "it changed shape since; set the weights by hand (istio.set_weights)"
        )
    changes = []
    for index, (http, pairs) in enumerate(zip(routes, recorded, strict=True)):
        dests = http.get("route") or []
        good = {str(dest): int(weight) for dest, weight in pairs}
        names = [_subset(d) for d in dests]
        if sorted(names) != sorted(good):
            raise RunbookError(
                f"http[{index}] routes to {', '.join(names)} now, to {', '.join(sorted(good))} when "
                "last good: it changed shape since; set the weights by hand (istio.set_weights)"
            )
        after = [{**d, "weight": good[name]} for d, name in zip(dests, names, strict=True)]
        if [_weight(d) for d in dests] != [_weight(d) for d in after]:
            changes.append(RouteChange(index, str(http.get("name", "")), dests, after))
    return changes


def json_patch(changes: list[RouteChange], *, reverse: bool = False) -> list[JsonPatchOp]:
    """The guarded JSON patch for ``changes`` (``reverse``: from after back to before, for undo)."""
    ops: list[JsonPatchOp] = []
    for change in changes:
        expected, target = (change.after, change.before) if reverse else (change.before, change.after)
        ops.append({"op": "test", "path": f"/spec/http/{change.index}/route", "value": expected})
        for j, (old, new) in enumerate(zip(expected, target, strict=True)):
            op: Literal["replace", "add"] = "replace" if "weight" in old else "add"
            ops.append({"op": op, "path": f"/spec/http/{change.index}/route/{j}/weight", "value": _weight(new)})
    return ops


@dataclass(frozen=True)
class Controller:
    """A progressive-delivery controller that owns a VirtualService's weights."""

    kind: str  # flagger | argo-rollouts
    name: str  # the Canary / Rollout


ARGO_MANAGED_BY = "argo-rollouts.argoproj.io/managed-by-rollouts"


def owning_controller(vs: Mapping[str, Any]) -> Controller | None:
    """Flagger: an ownerReference of kind Canary; Argo Rollouts: kind Rollout, or its managed-by marks."""
    meta = vs.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        api = str(ref.get("apiVersion", ""))
        if ref.get("kind") == "Canary" and api.startswith("flagger.app"):
            return Controller("flagger", str(ref.get("name", "")))
        if ref.get("kind") == "Rollout" and api.startswith("argoproj.io"):
            return Controller("argo-rollouts", str(ref.get("name", "")))
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    managed_by = annotations.get(ARGO_MANAGED_BY)
    if managed_by or labels.get("app.kubernetes.io/managed-by") == "argo-rollouts":
        return Controller("argo-rollouts", str(managed_by or "").split(",")[0])
    return None
