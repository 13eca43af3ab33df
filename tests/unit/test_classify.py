"""Classification as README.md documents it, on real payloads and at the threshold edges."""

from __future__ import annotations

from typing import Any

import pytest

from alertbot.domain.classify import ClassificationPolicy, SliRule, Thresholds, classify
from alertbot.domain.models import Alert, Severity
from alertbot.domain.parse import parse_webhook
from tests.helpers import payload_bytes

POLICY = ClassificationPolicy()
THRESHOLDS = Thresholds()


def alert(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Alert:
    data: dict[str, Any] = {
        "status": "firing",
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": "2026-11-29T19:54:53.462Z",
    }
    return Alert.model_validate(data)


@pytest.mark.parametrize(
    ("name", "severity", "reason_part"),
    [
        (
            "am-higherrorrate-nutrition-service-firing.json",
            Severity.CRITICAL,
            "error_rate 7.2% > critical threshold 5%",
        ),
        ("am-higherrorrate-ai-coach-firing.json", Severity.WARNING, "error_rate 1.8% > warning threshold 1%"),
        ("am-highlatencyp95-meal-planner-firing.json", Severity.CRITICAL, "latency 6.3s > critical threshold 5s"),
        ("am-highlatencyp95-user-profile-firing.json", Severity.WARNING, "latency 2.7s > warning threshold 2s"),
        ("am-servicedown-recipe-service-firing.json", Severity.CRITICAL, "service down: recipe-service"),
        ("am-deploymentrolledout-nutrition-service-firing.json", Severity.INFO, "event: DeploymentRolledOut"),
        ("am-highload-nutrition-service-firing.json", Severity.WARNING, "high load: load 91% > 80%"),
        ("prom-higherrorrate-firing.json", Severity.CRITICAL, "error_rate 7% > critical threshold 5%"),
    ],
)
def test_captured_payloads(name: str, severity: Severity, reason_part: str) -> None:
    """Each scenario the seed describes classifies to the seed's severity, with a reason."""
    payload = parse_webhook(payload_bytes(name))
    result = classify(payload.alerts[0], POLICY, THRESHOLDS)
    assert result.severity is severity
    assert reason_part in result.reason


def test_threshold_beats_severity_label_and_reason_names_both() -> None:
    """meal-planner is labelled warning but 6.3 s > 5 s: critical, and the reason says it overrode."""
    payload = parse_webhook(payload_bytes("am-highlatencyp95-meal-planner-firing.json"))
    assert payload.alerts[0].labels["severity"] == "warning"
    result = classify(payload.alerts[0], POLICY, THRESHOLDS)
    assert result.severity is Severity.CRITICAL
    assert "overrides label severity=warning" in result.reason


def test_grocery_pods_each_classified() -> None:
    """A notification with three alerts gives three verdicts (3.4 s, 4.1 s warning; 5.2 s critical)."""
    payload = parse_webhook(payload_bytes("am-highlatencyp95-grocery-3alerts-firing.json"))
    got = [classify(a, POLICY, THRESHOLDS).severity for a in payload.alerts]
    assert got == [Severity.WARNING, Severity.WARNING, Severity.CRITICAL]


@pytest.mark.parametrize(
    ("alertname", "value", "severity"),
    [
        ("HighErrorRate", "0.05", Severity.WARNING),  # not above 5 %
        ("HighErrorRate", "0.0500001", Severity.CRITICAL),
        ("HighErrorRate", "1%", Severity.INFO),  # not above 1 %
        ("HighErrorRate", "1.01%", Severity.WARNING),
        ("ApiErrors", "6%", Severity.CRITICAL),
        ("HighLatencyP99", "5s", Severity.WARNING),
        ("HighLatencyP99", "5001ms", Severity.CRITICAL),
        ("HighLatencyP99", "2000ms", Severity.INFO),
        ("HighLoad", "0.8", Severity.INFO),
        ("CpuSaturation", "81%", Severity.WARNING),
    ],
)
def test_threshold_edges(alertname: str, value: str, severity: Severity) -> None:
    """Thresholds are strict "greater than", as the seed states them."""
    assert classify(alert({"alertname": alertname}, {"value": value}), POLICY, THRESHOLDS).severity is severity


def test_sli_label_wins_over_alertname_rules() -> None:
    """label sli=latency makes a value be read as seconds even for an unrelated alertname."""
    result = classify(alert({"alertname": "Whatever", "sli": "latency"}, {"value": "6s"}), POLICY, THRESHOLDS)
    assert (result.severity, result.sli, result.value) == (Severity.CRITICAL, "latency", 6.0)


def test_availability_sli_is_service_down() -> None:
    """sli="availability" means the service is down: critical."""
    result = classify(alert({"alertname": "ProbeFailed", "sli": "availability", "service": "x"}), POLICY, THRESHOLDS)
    assert result.severity is Severity.CRITICAL and "service down" in result.reason


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("page", Severity.CRITICAL),
        ("HIGH", Severity.CRITICAL),
        ("ticket", Severity.WARNING),
        ("medium", Severity.WARNING),
        ("low", Severity.INFO),
        ("none", Severity.INFO),
        ("info", Severity.INFO),
    ],
)
def test_severity_label_aliases(label: str, severity: Severity) -> None:
    """Without an SLI value, the severity label decides, aliases included."""
    assert classify(alert({"alertname": "DiskFull", "severity": label}), POLICY, THRESHOLDS).severity is severity


def test_sli_alert_without_value_falls_back_to_label_and_says_so() -> None:
    """HighErrorRate with no value annotation uses its label, and the reason explains why."""
    result = classify(alert({"alertname": "HighErrorRate", "severity": "critical"}), POLICY, THRESHOLDS)
    assert result.severity is Severity.CRITICAL
    assert "without a numeric value" in result.reason


@pytest.mark.parametrize("labels", [{"alertname": "Mystery"}, {"alertname": "Mystery", "severity": "sev9"}, {}])
def test_unknown_alerts_default_to_warning(labels: dict[str, str]) -> None:
    """Nothing matched: warning, never dropped."""
    result = classify(alert(labels), POLICY, THRESHOLDS)
    assert result.severity is Severity.WARNING and "default warning" in result.reason


@pytest.mark.parametrize("name", ["ConfigReloaded", "ApiDeployed", "MeshConfigChanged"])
def test_event_names_are_info(name: str) -> None:
    """Deployment and config-change events are info whatever their label says."""
    assert classify(alert({"alertname": name, "severity": "critical"}), POLICY, THRESHOLDS).severity is Severity.INFO


def test_type_event_label_is_info() -> None:
    result = classify(alert({"alertname": "CanaryStarted", "type": "event"}), POLICY, THRESHOLDS)
    assert result.severity is Severity.INFO


def test_configured_thresholds_and_rules_apply() -> None:
    """Thresholds, value keys and SLI rules come from config when given."""
    thresholds = Thresholds.model_validate({"error_rate": {"warning": 0.1, "critical": 0.2}})
    policy = ClassificationPolicy(value_keys=["current"], rules=[SliRule(alertname="Checkout.*", sli="error_rate")])
    result = classify(alert({"alertname": "CheckoutFailures"}, {"current": "15%"}), policy, thresholds)
    assert result.severity is Severity.WARNING
    assert "warning threshold 10%" in result.reason
