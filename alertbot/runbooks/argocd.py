"""Argo CD awareness: an object an Argo CD Application syncs with automated self-heal is put back to
what Git says within seconds of any change made beside it, so a rollback patched into the cluster
would "succeed" and then silently revert (argoproj/argo-cd#9570, #15588, #18072).

Before a step changes a VirtualService or a Deployment, the object's tracking annotation
(``argocd.argoproj.io/tracking-id``, Argo CD's default tracking method since 3.0) names its
Application; alertbot reads it and

- refuses when it syncs automatically with self-heal, saying what to do instead (revert in Git, or
  turn self-heal off and run again) — alertbot changes nothing;
- goes ahead with a note when it syncs without self-heal (the change holds until the next commit is
  synced) or not automatically (Argo CD shows it OutOfSync until Git matches);
- goes ahead with a warning when the Application cannot be read (no RBAC to get
  applications.argoproj.io, or it lives elsewhere): an emergency rollback is not blocked on a
  permission alertbot may not have been given.

Label tracking (``app.kubernetes.io/instance``) is not used: Helm sets the same label on everything
it installs, so it cannot tell an Argo CD-synced object from any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from alertbot.domain.jsontypes import KubeObject
from alertbot.errors import RunbookError

TRACKING_ID = "argocd.argoproj.io/tracking-id"
ARGOCD_NAMESPACE = "argocd"  # where Applications live unless the tracking id names another


@dataclass(frozen=True)
class TrackedBy:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def tracking_application(obj: KubeObject) -> TrackedBy | None:
    """The Application tracking ``obj``: its tracking id is ``APP:GROUP/KIND:NAMESPACE/NAME``, where APP
    is ``NAMESPACE_NAME`` for an Application outside Argo CD's own namespace (Kubernetes names have no
    ``_``, so the split is unambiguous)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    app = str(annotations.get(TRACKING_ID) or "").split(":", 1)[0].strip()
    if not app:
        return None
    namespace, _, name = app.rpartition("_")
    return TrackedBy(namespace or ARGOCD_NAMESPACE, name)


GetApplication = Callable[[str, str], Awaitable[KubeObject]]


async def self_heal_guard(obj: KubeObject, target: str, get_application: GetApplication) -> list[str]:
    """Plan lines about the Application tracking ``obj`` (none when none does); raises ``RunbookError``
    when it would revert the change (automated sync with self-heal)."""
    tracked = tracking_application(obj)
    if tracked is None:
        return []
    try:
        app = await get_application(tracked.namespace, tracked.name)
    except RunbookError as exc:
        return [
            f"warning: {target} is synced by Argo CD Application {tracked}, which could not be read "
            f"({exc.message}): if it syncs automatically with self-heal, Argo CD reverts this change"
        ]
    automated: Any = ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    if isinstance(automated, dict) and automated.get("enabled", True) is not False:
        if automated.get("selfHeal"):
            raise RunbookError(
                f"{target} is synced by Argo CD Application {tracked} with automated self-heal: Argo CD would "
                "revert this change within seconds. Roll back in Git (revert the commit Argo CD syncs), or turn "
                f"self-heal off first (`argocd app set {tracked.name} --self-heal=false`, or `kubectl -n "
                f"{tracked.namespace} patch application {tracked.name} --type merge -p "
                '\'{"spec":{"syncPolicy":{"automated":{"selfHeal":false}}}}\'`) and run again '
                "— alertbot changed nothing"
            )
        return [
            f"note: {target} is synced by Argo CD Application {tracked} automatically, without self-heal: "
            "this change holds until Argo CD syncs a new commit — make it in Git too"
        ]
    return [f"note: {target} is synced by Argo CD Application {tracked}: it shows OutOfSync until Git matches"]
