"""The registry of runbook step types (one dict: a step's ``type`` → what plans and applies it), and
planning or applying one step through it."""

from __future__ import annotations

from alertbot.runbooks.flow_steps import NotifyStep, PrometheusCheckStep, WaitStep
from alertbot.runbooks.model import Step
from alertbot.runbooks.steps import (
    IstioRestoreLastGoodStep,
    IstioRollbackStep,
    IstioSetWeightsStep,
    K8sRolloutRestartStep,
    K8sRolloutUndoStep,
    K8sScaleStep,
    StepContext,
    StepPlan,
    StepType,
)

STEPS: dict[str, StepType] = {
    "istio.rollback": IstioRollbackStep(),
    "istio.set_weights": IstioSetWeightsStep(),
    "istio.restore_last_good": IstioRestoreLastGoodStep(),
    "k8s.scale": K8sScaleStep(),
    "k8s.rollout_restart": K8sRolloutRestartStep(),
    "k8s.rollout_undo": K8sRolloutUndoStep(),
    "prometheus.check": PrometheusCheckStep(),
    "wait": WaitStep(),
    "notify": NotifyStep(),
}


async def plan_step(index: int, step: Step, ctx: StepContext) -> StepPlan:
    return await STEPS[step.type].plan(index, step, ctx)


async def apply_step(plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool = False) -> str | None:
    return await STEPS[plan.type].apply(plan, ctx, dry_run=dry_run, reverse=reverse)
