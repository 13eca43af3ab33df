"""What a runbook step's plan records: stored with the run (``plan``, and ``applied`` for the steps
carried out), read back by undo. Each step type fills its own detail."""

from __future__ import annotations

from typing import TypedDict

from alertbot.domain.jsontypes import KubeObject


class RouteChangeDetail(TypedDict):
    index: int
    name: str
    before: list[KubeObject]
    after: list[KubeObject]


class IstioDetail(TypedDict):
    """``istio.*``: the weight changes per route, and the VirtualService's service."""

    changes: list[RouteChangeDetail]
    service: str


class AbortDetail(TypedDict):
    """``istio.rollback`` on a VirtualService an Argo Rollout owns: the Rollout to abort."""

    abort_rollout: str


class ScaleDetail(TypedDict):
    """``k8s.scale``: replicas before and after."""

    before: int
    after: int


class UndoDetail(TypedDict):
    """``k8s.rollout_undo``: the pod template before and after, and the Deployment's service."""

    before: KubeObject
    after: KubeObject
    service: str


class CheckDetail(TypedDict):
    """``prometheus.check``: the step itself (as JSON), run again when applied."""

    check: dict[str, object]


class WaitDetail(TypedDict):
    seconds: float


class NotifyDetail(TypedDict):
    message: str


class NoDetail(TypedDict):
    """A step with nothing to carry to apply (no cluster, skipped, a restart)."""


StepDetail = IstioDetail | AbortDetail | ScaleDetail | UndoDetail | CheckDetail | WaitDetail | NotifyDetail | NoDetail
"""What a step's ``apply`` (and undo) needs from its plan; each step type reads only its own."""


class PlanEntry(TypedDict):
    """One step's plan as stored with its run (``StepPlan.to_json``)."""

    index: int
    type: str  # the step type
    target: str  # what it changes, e.g. "virtualservice ns/name" ("" for none)
    lines: list[str]
    detail: StepDetail
    noop: bool
    undoable: bool
