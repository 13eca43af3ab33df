"""Which Kubernetes objects an automation's run may act on: its ``targets`` allow-list.

Alert labels fill an automation's params, and whoever can post to Alertmanager writes the labels; so a
run an automation asked for may only act on the ``namespace/name`` objects its ``targets`` globs
allow. An automation whose target params come from labels must have such a list (check-config).
"""

from __future__ import annotations

from alertbot.domain.automation import from_labels, outside_targets
from alertbot.runbooks.model import Runbook
from alertbot.settings_sections import AutomationConfig


def labelled_target_params(automation: AutomationConfig, runbook: Runbook) -> list[str]:
    """The runbook params choosing a step's namespace or name that the automation fills from labels."""
    return sorted(p for p in runbook.target_params() if from_labels(automation.params.get(p, "")))


def target_refusal(automation: AutomationConfig, runbook: Runbook, targets: list[str]) -> str | None:
    """Why a run ``automation`` asked for may not act on ``targets`` (None: it may)."""
    if not automation.targets:
        templated = labelled_target_params(automation, runbook)
        if templated:
            return (
                f"automation {automation.name} takes its target ({', '.join(templated)}) from alert labels "
                "but declares no `targets` allow-list: nothing was run"
            )
        return None
    outside = outside_targets(automation.targets, targets)
    if outside:
        return (
            f"target {', '.join(outside)} is outside automation {automation.name}'s targets "
            f"({', '.join(automation.targets)}): nothing was run"
        )
    return None
