"""Automation matching and param templating (pure)."""

from __future__ import annotations

import pytest

from alertbot.domain.automation import automation_matches, render_params

LABELS = {
    "alertname": "HighErrorRate",
    "severity": "critical",
    "canary": "true",
    "namespace": "ai-nutritionist",
    "virtualservice": "nutrition-service-canary",
}


def test_match_is_equality_on_every_key() -> None:
    assert automation_matches({"severity": "critical", "canary": "true"}, LABELS)
    assert not automation_matches({"severity": "warning", "canary": "true"}, LABELS)
    assert not automation_matches({"team": "x"}, LABELS)
    assert automation_matches({}, LABELS)


def test_params_are_templated_from_labels() -> None:
    params = {
        "namespace": "{{ labels.namespace }}",
        "virtualservice": "{{labels.virtualservice}}",
        "stable_subset": "stable",
        "note": "vs={{ labels.virtualservice }} in {{ labels.namespace }}",
    }
    assert render_params(params, LABELS) == {
        "namespace": "ai-nutritionist",
        "virtualservice": "nutrition-service-canary",
        "stable_subset": "stable",
        "note": "vs=nutrition-service-canary in ai-nutritionist",
    }


def test_missing_label_is_an_error_naming_it() -> None:
    """A runbook must never run against an empty target."""
    with pytest.raises(ValueError, match="param 'deployment': the alert has no label deployment"):
        render_params({"deployment": "{{ labels.deployment }}"}, LABELS)
