"""``alertbot test POLICY_TESTS.yaml``: check what alertbot would decide for recorded payloads.

    tests:
      - name: canary error rate pages and offers the rollback
        payload: payloads/am-higherrorrate-nutrition-service-firing.json   # relative to this file
        expect:
          severity: critical                   # every alert of the payload, or
          receivers: [pagerduty, slack]        # the route's receivers, in order
          runbooks: [emergency-rollback]       # automations that would start
      - name: one alert of a group
        payload: payloads/am-highlatencyp95-grocery-3alerts-firing.json
        alert: {pod: grocery-7d9f8b6c5-klmno}  # labels picking one alert of the payload
        expect: {severity: critical}

Pure: nothing is sent, stored or changed. Teams run it in CI when they change routes or thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from alertbot.domain.automation import automation_matches
from alertbot.domain.models import Severity
from alertbot.domain.parse import parse_webhook
from alertbot.errors import PayloadError
from alertbot.pipeline import plan_routing
from alertbot.settings import Config, load_yaml_model


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity | None = None
    receivers: list[str] | None = None
    runbooks: list[str] | None = None


class PolicyTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    payload: Path
    alert: dict[str, str] = Field(default_factory=dict)
    expect: Expectation


class PolicyTests(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tests: list[PolicyTest] = Field(min_length=1)


@dataclass(frozen=True)
class Outcome:
    name: str
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def load(path: Path) -> PolicyTests:
    return load_yaml_model(path, PolicyTests, what="policy tests file")


def run(path: Path, config: Config) -> list[Outcome]:
    outcomes = []
    for test in load(path).tests:
        payload_path = test.payload if test.payload.is_absolute() else path.parent / test.payload
        try:
            alerts = parse_webhook(payload_path.read_bytes()).alerts
        except OSError as exc:
            outcomes.append(Outcome(test.name, [f"payload {payload_path}: {exc.strerror}"]))
            continue
        except PayloadError as exc:
            outcomes.append(Outcome(test.name, [f"payload {payload_path}: {exc.message}"]))
            continue
        chosen = [a for a in alerts if all(a.labels.get(k) == v for k, v in test.alert.items())]
        if not chosen:
            outcomes.append(Outcome(test.name, [f"no alert in {payload_path.name} has labels {test.alert}"]))
            continue
        failures = []
        for alert in chosen:
            plan = plan_routing(config, alert, ["pagerduty", "slack"])
            which = f"{alert.alertname} {alert.fingerprint}"
            want = test.expect
            if want.severity is not None and plan.classification.severity is not want.severity:
                failures.append(
                    f"{which}: severity {plan.classification.severity.value}, expected "
                    f"{want.severity.value} ({plan.classification.reason})"
                )
            if want.receivers is not None and list(plan.route.receivers) != want.receivers:
                failures.append(f"{which}: receivers {list(plan.route.receivers)}, expected {want.receivers}")
            if want.runbooks is not None:
                got = [a.runbook for a in config.automations if automation_matches(a.match, plan.labels)]
                if got != want.runbooks:
                    failures.append(f"{which}: runbooks {got}, expected {want.runbooks}")
        outcomes.append(Outcome(test.name, failures))
    return outcomes
