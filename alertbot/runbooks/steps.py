"""Runbook steps: what a step type is (plan, then apply or reverse), its plan, and the steps that act
on the cluster (Istio traffic, Kubernetes workloads). Each plans (reads live state, computes the
change, writes nothing) and applies (or, for undo, reverses) what it planned. The other steps are in
``flow_steps``; ``registry.STEPS`` lists every type."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

import structlog

from alertbot.domain.changes import pod_images, vs_service
from alertbot.domain.jsontypes import KubeObject
from alertbot.domain.plans import (
    AbortDetail,
    IstioDetail,
    NoDetail,
    PlanEntry,
    ScaleDetail,
    StepDetail,
    UndoDetail,
)
from alertbot.errors import RunbookError
from alertbot.prometheus import Prometheus
from alertbot.runbooks import istio
from alertbot.runbooks.argocd import ARGOCD_NAMESPACE, self_heal_guard
from alertbot.runbooks.k8s import Kubernetes
from alertbot.runbooks.model import (
    IstioRestoreLastGood,
    IstioRollback,
    IstioSetWeights,
    K8sRolloutRestart,
    K8sRolloutUndo,
    K8sScale,
)
from alertbot.store.kube_objects import LastGood

log = structlog.get_logger("alertbot.runbooks")
NO_CLUSTER = "no Kubernetes cluster configured"


def _no_detail() -> StepDetail:
    return NoDetail()


@dataclass
class StepPlan:
    """What one step would do, as planned; stored with the run (its ``detail`` is what undo needs)."""

    index: int
    type: str
    target: str  # what it changes, e.g. "virtualservice ns/name" ("" for none)
    lines: list[str]  # human-readable: before → after
    detail: StepDetail = field(default_factory=_no_detail)
    noop: bool = False  # the target is already as wanted
    undoable: bool = False  # applying it changes state that undo can restore

    def to_json(self) -> dict[str, Any]:  # stored with the run as JSON (store/runbook_runs.py)
        return {
            "index": self.index,
            "type": self.type,
            "target": self.target,
            "lines": self.lines,
            "detail": self.detail,
            "noop": self.noop,
            "undoable": self.undoable,
        }

    @classmethod
    def from_json(cls, data: PlanEntry) -> StepPlan:
        return cls(
            data["index"],
            data["type"],
            data["target"],
            list(data["lines"]),
            cast(StepDetail, dict(data["detail"])),  # as its step type wrote it
            bool(data["noop"]),
            bool(data["undoable"]),
        )

    def namespace_and_name(self) -> tuple[str, str]:
        namespace, name = self.target.split(" ", 1)[1].split("/", 1)
        return namespace, name


async def _no_record(namespace: str, name: str) -> LastGood | None:
    return None


@dataclass(frozen=True)
class StepContext:
    kube: Kubernetes | None
    prometheus: Prometheus | None
    clock: Callable[[], datetime]
    max_wait: float
    last_good: Callable[[str, str], Awaitable[LastGood | None]] = _no_record
    argocd_namespace: str = ARGOCD_NAMESPACE  # kubernetes.argocd_namespace


class StepType(Protocol):
    async def plan(self, index: int, step: Any, ctx: StepContext) -> StepPlan: ...

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        """Apply (``reverse``: undo) the plan; ``dry_run``: server-side only. Returns a note, if any."""
        ...


def _require(kube: Kubernetes | None) -> Kubernetes:
    if kube is None:
        raise RunbookError(f"{NO_CLUSTER}: runbooks can only plan")
    return kube


class IstioTrafficStep:
    """What ``istio.rollback``, ``istio.set_weights`` and ``istio.restore_last_good`` share: guarded
    weight changes on a VirtualService."""

    async def plan(
        self, index: int, step: IstioRollback | IstioSetWeights | IstioRestoreLastGood, ctx: StepContext
    ) -> StepPlan:
        target = f"virtualservice {step.namespace}/{step.virtualservice}"
        record = None
        if isinstance(step, IstioRestoreLastGood):
            record = await ctx.last_good(step.namespace, step.virtualservice)
            if record is None:
                raise RunbookError(
                    f"{target}: no last-known-good weights recorded (they are recorded by the "
                    "Kubernetes watch, kubernetes.watch, while no critical alert fires for its service)"
                )
        if ctx.kube is None:
            intent = (
                f"all traffic of every split route to subset {step.stable_subset}"
                if isinstance(step, IstioRollback)
                else f"weights {step.weights}"
                if isinstance(step, IstioSetWeights)
                else "the last good weights"
            )
            return StepPlan(index, step.type, target, [f"{target}: {intent} (current state unknown: {NO_CLUSTER})"])
        vs = await ctx.kube.get_virtualservice(step.namespace, step.virtualservice)
        controller = istio.owning_controller(vs)
        if controller is not None and controller.kind == "flagger":
            raise RunbookError(
                f"{target} is managed by Flagger (Canary {controller.name!r}): Flagger reconciles its weights and "
                "would undo a direct patch. Let Flagger roll back (its analysis fails on the same metrics), or "
                f"stop the canary with Flagger itself (e.g. `kubectl -n {step.namespace} annotate canary "
                f"{controller.name} ...` per your Flagger setup) — alertbot changed nothing"
            )
        if controller is not None and isinstance(step, IstioRollback):
            rollout = f"rollout {step.namespace}/{controller.name}"
            return StepPlan(
                index,
                "istio.rollback",
                rollout,
                [
                    f"{target} is managed by Argo Rollouts: abort {rollout} (Argo sends all traffic back "
                    "to stable) — the same as `kubectl argo rollouts abort`"
                ],
                {"abort_rollout": controller.name},
            )
        if controller is not None:
            raise RunbookError(
                f"{target} is managed by Argo Rollouts ({controller.name!r}): change its weights "
                "through the Rollout, not the VirtualService — alertbot changed nothing"
            )
        if isinstance(step, IstioRollback):
            changes = istio.plan_rollback(vs, step.stable_subset)
            nothing = f"{target}: already all traffic on {step.stable_subset} — nothing to do"
        elif isinstance(step, IstioRestoreLastGood):
            assert record is not None
            changes = istio.plan_restore(vs, record.weights)
            nothing = f"{target}: already at the last good weights (of {record.at.isoformat()}) — nothing to do"
        else:
            changes = istio.plan_set_weights(vs, {k: int(v) for k, v in step.weights.items()})
            nothing = f"{target}: weights already as requested — nothing to do"
        detail: IstioDetail = {
            "changes": [{"index": c.index, "name": c.name, "before": c.before, "after": c.after} for c in changes],
            "service": vs_service(vs),
        }
        lines = [f"{target} {c.describe()}" for c in changes] or [nothing]
        if record is not None and changes:
            lines = [f"{line} (last good at {record.at.isoformat()})" for line in lines]
        if changes:
            lines += await self_heal_guard(vs, target, ctx.kube.get_application, ctx.argocd_namespace)
        return StepPlan(index, step.type, target, lines, detail, noop=not changes, undoable=bool(changes))

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        if "abort_rollout" in plan.detail:
            if not reverse:  # an abort is not undone here: `kubectl argo rollouts retry` resumes it
                namespace, _ = plan.namespace_and_name()
                await _require(ctx.kube).abort_rollout(
                    namespace, cast(AbortDetail, plan.detail)["abort_rollout"], dry_run=dry_run
                )
            return None
        detail = cast(IstioDetail, plan.detail)
        changes = [istio.RouteChange(c["index"], c["name"], c["before"], c["after"]) for c in detail.get("changes", [])]
        if changes:
            namespace, name = plan.namespace_and_name()
            await _require(ctx.kube).patch_virtualservice(
                namespace, name, istio.json_patch(changes, reverse=reverse), dry_run=dry_run
            )
        return None


class IstioRollbackStep(IstioTrafficStep):
    """``istio.rollback``: every split route's traffic back to the stable subset (or the Argo Rollout
    aborted, when one owns the VirtualService)."""


class IstioSetWeightsStep(IstioTrafficStep):
    """``istio.set_weights``: the given subset weights on every split route."""


class IstioRestoreLastGoodStep(IstioTrafficStep):
    """``istio.restore_last_good``: the weights the Kubernetes watch last recorded as good."""


class K8sScaleStep:
    async def plan(self, index: int, step: K8sScale, ctx: StepContext) -> StepPlan:
        target = f"deployment {step.namespace}/{step.deployment}"
        want = int(step.replicas)
        if ctx.kube is None:
            return StepPlan(
                index, step.type, target, [f"{target}: scale to {want} replicas (current unknown: {NO_CLUSTER})"]
            )
        have = await ctx.kube.get_replicas(step.namespace, step.deployment)
        line = f"{target}: replicas {have} → {want}" if have != want else f"{target}: already {want} replicas"
        return StepPlan(
            index, step.type, target, [line], {"before": have, "after": want}, noop=have == want, undoable=have != want
        )

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        detail = cast(ScaleDetail, plan.detail)
        if "before" not in detail or detail["before"] == detail["after"]:
            return None
        before, after = int(detail["before"]), int(detail["after"])
        expect, want = (after, before) if reverse else (before, after)
        namespace, name = plan.namespace_and_name()
        await _require(ctx.kube).set_replicas(namespace, name, expect=expect, replicas=want, dry_run=dry_run)
        return None


class K8sRolloutRestartStep:
    async def plan(self, index: int, step: K8sRolloutRestart, ctx: StepContext) -> StepPlan:
        target = f"deployment {step.namespace}/{step.deployment}"
        return StepPlan(index, step.type, target, [f"{target}: rollout restart (new pods, same spec)"])

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        if not reverse:  # a restart cannot be undone
            namespace, name = plan.namespace_and_name()
            await _require(ctx.kube).rollout_restart(namespace, name, at=ctx.clock(), dry_run=dry_run)
        return None


REVISION = "deployment.kubernetes.io/revision"


def _revision(obj: KubeObject) -> int:
    """A Deployment's or ReplicaSet's revision number (0 when it has none)."""
    return int((obj.get("metadata", {}).get("annotations") or {}).get(REVISION, "0") or 0)


class K8sRolloutUndoStep:
    """``k8s.rollout_undo``: what ``kubectl rollout undo`` does — find the ReplicaSet of the previous
    revision and put its pod template back on the Deployment (guarded by a test of the template read)."""

    async def plan(self, index: int, step: K8sRolloutUndo, ctx: StepContext) -> StepPlan:
        target = f"deployment {step.namespace}/{step.deployment}"
        if ctx.kube is None:
            return StepPlan(
                index, step.type, target, [f"{target}: back to the previous revision (current unknown: {NO_CLUSTER})"]
            )
        deployment = await ctx.kube.get_deployment(step.namespace, step.deployment)
        meta, spec = deployment.get("metadata", {}), deployment.get("spec", {})
        current = _revision(deployment)
        owned = [
            rs
            for rs in await ctx.kube.replica_sets(step.namespace, spec.get("selector", {}).get("matchLabels") or {})
            if any(ref.get("uid") == meta.get("uid") for ref in rs["metadata"].get("ownerReferences") or [])
        ]
        older = sorted(
            ((revision, rs) for rs in owned if (revision := _revision(rs)) < current), key=lambda pair: pair[0]
        )
        if not older:
            raise RunbookError(f"{target}: no previous revision to go back to (revision {current})")
        revision, previous = older[-1]
        before = spec.get("template", {})
        after = copy.deepcopy(previous["spec"]["template"])
        (after.get("metadata", {}).get("labels") or {}).pop("pod-template-hash", None)
        images = " → ".join(", ".join(pod_images({"spec": {"template": t}}).values()) for t in (before, after))
        guard = (
            await self_heal_guard(deployment, target, ctx.kube.get_application, ctx.argocd_namespace)
            if before != after
            else []
        )
        return StepPlan(
            index,
            step.type,
            target,
            [f"{target}: revision {current} → {revision}'s pod template ({images})", *guard],
            {"before": before, "after": after, "service": (meta.get("labels") or {}).get("app", "")},
            noop=before == after,
            undoable=before != after,
        )

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        detail = cast(UndoDetail, plan.detail)
        if "before" not in detail or plan.noop:
            return None
        expect, want = (detail["after"], detail["before"]) if reverse else (detail["before"], detail["after"])
        namespace, name = plan.namespace_and_name()
        await _require(ctx.kube).patch_deployment(
            namespace,
            name,
            [
                {"op": "test", "path": "/spec/template", "value": expect},
                {"op": "replace", "path": "/spec/template", "value": want},
            ],
            dry_run=dry_run,
        )
        return None
