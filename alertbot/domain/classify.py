"""Classification: every alert gets exactly one severity and a reason a human can check.

Order of precedence (README.md, "What it does with an alert"; thresholds: docs/configuration.md):
1. a known SLI with a numeric value → the thresholds decide (they win over a ``severity`` label);
2. service down → critical;
3. deployment / config-change events → info;
4. the ``severity`` label, with aliases;
5. otherwise warning — an alert is never dropped because it is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alertbot.domain.matchers import compile_label_regex
from alertbot.domain.models import Alert, Classification, Severity
from alertbot.domain.parse import Regex, parse_sli_value

Sli = Literal["error_rate", "latency", "load"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TwoLevel(_Strict):
    warning: float = Field(ge=0)
    critical: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TwoLevel:
        if self.warning > self.critical:
            raise ValueError(f"warning ({self.warning}) must not be above critical ({self.critical})")
        return self


class LoadThreshold(_Strict):
    warning: float = Field(0.8, ge=0)


class Thresholds(_Strict):
    """The seed's numbers: error rate > 5 % / > 1 %, latency > 5 s / > 2 s, load > 80 %."""

    error_rate: TwoLevel = TwoLevel(warning=0.01, critical=0.05)
    latency: TwoLevel = TwoLevel(warning=2.0, critical=5.0)
    load: LoadThreshold = LoadThreshold()

    @model_validator(mode="before")
    @classmethod
    def _levels_left_out_keep_their_defaults(cls, data: Any) -> Any:
        """``error_rate: {warning: 0.02}`` overrides the warning level alone; critical stays 0.05."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for sli in ("error_rate", "latency"):
            given = data.get(sli)
            if isinstance(given, dict):
                default: TwoLevel = cls.model_fields[sli].default
                merged[sli] = {"warning": default.warning, "critical": default.critical, **given}
        return merged


class SliRule(_Strict):
    """``alertname`` (a regular expression, anchored) → the SLI the alert measures."""

    alertname: Regex
    sli: Sli

    def matches(self, alertname: str) -> bool:
        return compile_label_regex(self.alertname).fullmatch(alertname) is not None


DEFAULT_SLI_RULES = (
    SliRule(alertname=".*(ErrorRate|Errors).*", sli="error_rate"),
    SliRule(alertname=".*Latency.*", sli="latency"),
    SliRule(alertname=".*(Load|Saturation).*", sli="load"),
)


class ClassificationPolicy(_Strict):
    value_keys: list[str] = Field(default_factory=lambda: ["value"], min_length=1)
    rules: list[SliRule] = Field(default_factory=lambda: list(DEFAULT_SLI_RULES))
    down_alertnames: list[str] = Field(default_factory=lambda: ["ServiceDown", "TargetDown", "InstanceDown"])
    event_alertname_suffixes: list[str] = Field(
        default_factory=lambda: ["RolledOut", "Deployed", "ConfigChanged", "ConfigReloaded"]
    )


SEVERITY_ALIASES: Mapping[str, Severity] = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "high": Severity.CRITICAL,
    "warning": Severity.WARNING,
    "ticket": Severity.WARNING,
    "medium": Severity.WARNING,
    "info": Severity.INFO,
    "low": Severity.INFO,
    "none": Severity.INFO,
}


def _sli_for(alert: Alert, policy: ClassificationPolicy) -> str | None:
    label = alert.labels.get("sli", "").strip()
    if label:
        return label
    for rule in policy.rules:
        if rule.matches(alert.alertname):
            return rule.sli
    return None


def _fmt(sli: str, value: float) -> str:
    if sli == "latency":
        return f"{value:g}s"
    return f"{value * 100:g}%"


def _by_threshold(sli: str, value: float, thresholds: Thresholds) -> tuple[Severity, str]:
    if sli == "load":
        limit = thresholds.load.warning
        if value > limit:
            return Severity.WARNING, f"high load: load {_fmt(sli, value)} > {_fmt(sli, limit)}"
        return Severity.INFO, f"load {_fmt(sli, value)} <= warning threshold {_fmt(sli, limit)}"
    levels = thresholds.error_rate if sli == "error_rate" else thresholds.latency
    if value > levels.critical:
        return Severity.CRITICAL, f"{sli} {_fmt(sli, value)} > critical threshold {_fmt(sli, levels.critical)}"
    if value > levels.warning:
        return Severity.WARNING, f"{sli} {_fmt(sli, value)} > warning threshold {_fmt(sli, levels.warning)}"
    return Severity.INFO, f"{sli} {_fmt(sli, value)} <= warning threshold {_fmt(sli, levels.warning)}"


def _label_note(alert: Alert, severity: Severity) -> str:
    label = alert.labels.get("severity")
    if label is None:
        return ""
    if SEVERITY_ALIASES.get(label.strip().lower()) is severity:
        return f" (label severity={label} agrees)"
    return f" (overrides label severity={label})"


def classify(alert: Alert, policy: ClassificationPolicy, thresholds: Thresholds) -> Classification:
    sli = _sli_for(alert, policy)
    if sli in ("error_rate", "latency", "load"):
        for key in policy.value_keys:
            raw = alert.annotations.get(key)
            if raw is None:
                continue
            value = parse_sli_value(raw, sli)
            if value is not None:
                severity, why = _by_threshold(sli, value, thresholds)
                return Classification(severity, why + _label_note(alert, severity), sli, value)

    if alert.alertname in policy.down_alertnames or sli == "availability":
        subject = alert.service or alert.alertname
        return Classification(
            Severity.CRITICAL, f"service down: {subject}" + _label_note(alert, Severity.CRITICAL), "availability"
        )

    if alert.labels.get("type") == "event" or any(
        alert.alertname.endswith(suffix) for suffix in policy.event_alertname_suffixes
    ):
        return Classification(Severity.INFO, f"event: {alert.alertname or 'type=event'}")

    missing_value = f"{sli} alert without a numeric value; " if sli else ""
    label = alert.labels.get("severity")
    if label is not None:
        mapped = SEVERITY_ALIASES.get(label.strip().lower())
        if mapped is not None:
            alias = "" if label.strip().lower() == mapped.value else f" (alias of {mapped.value})"
            return Classification(mapped, f"{missing_value}label severity={label}{alias}", sli)
        return Classification(
            Severity.WARNING, f"{missing_value}unknown severity label {label!r}; default warning", sli
        )
    return Classification(
        Severity.WARNING, f"{missing_value}no threshold, event rule or severity label matched; default warning", sli
    )
