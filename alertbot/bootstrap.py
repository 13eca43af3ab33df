"""Wiring shared by the daemon (``web/app.py``) and the CLI: which channels are enabled, how
runbooks reach the cluster, the executor, and the policy services with their roles and limits."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from alertbot.notify.rota import Rota
from alertbot.observability import Metrics
from alertbot.prometheus import Prometheus
from alertbot.runbooks.executor import Executor
from alertbot.runbooks.k8s import Kubernetes, api_client
from alertbot.runbooks.model import Runbook
from alertbot.services import Services
from alertbot.services.approvals import ApprovalService
from alertbot.services.incidents import IncidentService
from alertbot.services.oncall import OncallService
from alertbot.services.roles import GroupMembers, Roles
from alertbot.services.runs import RunService
from alertbot.services.silences import Announce, SilenceLimits, SilenceService
from alertbot.settings import Config, Secrets
from alertbot.store.engine import Store

Clock = Callable[[], datetime]


def enabled_channel_names(secrets: Secrets) -> list[str]:
    """Channels whose secret is present (the console notifier stands in for the others)."""
    names = []
    if secrets.pagerduty_routing_key is not None or secrets.pagerduty_routing_keys:
        names.append("pagerduty")
    if secrets.slack_bot_token is not None:
        names.append("slack")
    return names


def kube_factory(config: Config) -> Callable[[], Kubernetes] | None:
    """How runbooks reach the cluster: kubernetes.kubeconfig, $KUBECONFIG, in-cluster; None: no cluster."""
    path = config.kubernetes.kubeconfig
    if path is None and not os.environ.get("KUBECONFIG") and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    return lambda: Kubernetes(api_client(path))


def make_executor(
    config: Config,
    store: Store,
    *,
    clock: Clock,
    kube: Callable[[], Kubernetes] | None,
    metrics: Metrics | None = None,
) -> Executor:
    return Executor(
        store,
        kube,
        clock=clock,
        settle=config.kubernetes.settle,
        dry_run_only=config.runbooks.dry_run,
        metrics=metrics,
        prometheus=Prometheus(config.prometheus.url) if config.prometheus.url else None,
        automations=config.automations,
        argocd_namespace=config.kubernetes.argocd_namespace,
    )


async def _nobody(group: str) -> set[str]:
    return set()


def make_services(
    config: Config,
    store: Store,
    executor: Executor,
    runbooks: dict[str, Runbook],
    *,
    clock: Clock,
    members: GroupMembers = _nobody,
    announce: Announce | None = None,
    on_enqueued: Callable[[], None] = lambda: None,
    rota: Rota | None = None,
) -> Services:
    roles = Roles(responders=config.slack.responders, approvers=config.slack.runbook_approvers, members=members)
    limits = SilenceLimits(max_duration=config.silences.max_duration)
    silences = SilenceService(store, roles=roles, clock=clock, limits=limits, announce=announce)
    return Services(
        roles=roles,
        silences=silences,
        incidents=IncidentService(store, roles=roles, clock=clock, on_enqueued=on_enqueued),
        approvals=ApprovalService(
            store,
            executor,
            runbooks,
            roles=roles,
            clock=clock,
            allow_self_approval=config.slack.allow_self_approval,
            keep_after_resolve={a.name for a in config.automations if a.keep_after_resolve},
        ),
        runs=RunService(executor, runbooks),
        oncall=OncallService(
            store,
            roles=roles,
            clock=clock,
            config=lambda: config.oncall,
            rota=rota or Rota(store, lambda: config.oncall, clock),
        ),
    )
