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

Nothing is sent, and the real store is neither read nor changed: each test's payload goes through the
daemon's own ingest stages on a scratch store. Teams run it in CI when they change routes or thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from alertbot.domain.models import Alert, Severity
from alertbot.domain.parse import parse_webhook
from alertbot.errors import PayloadError
from alertbot.ingest.preview import PREVIEW_CHANNELS, preview
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


async def run(path: Path, config: Config) -> list[Outcome]:
    """Each test's payload through the daemon's own ingest stages (alertbot/ingest/preview.py), on a
    fresh scratch store per test: the runbooks are the runs its automations would ask for."""
    outcomes = []
    for test in load(path).tests:
        payload_path = test.payload if test.payload.is_absolute() else path.parent / test.payload
        try:
            payload = parse_webhook(payload_path.read_bytes())
        except OSError as exc:
            outcomes.append(Outcome(test.name, [f"payload {payload_path}: {exc.strerror}"]))
            continue
        except PayloadError as exc:
            outcomes.append(Outcome(test.name, [f"payload {payload_path}: {exc.message}"]))
            continue
        chosen = [a for a in payload.alerts if all(a.labels.get(k) == v for k, v in test.alert.items())]
        if not chosen:
            outcomes.append(Outcome(test.name, [f"no alert in {payload_path.name} has labels {test.alert}"]))
            continue
        (decided,) = await preview(config, [payload], datetime.now(UTC))
        runs = {id(d.alert): [r.runbook for r in d.runs if r.status != "failed"] for d in decided}
        failures = []
        for alert in chosen:
            failures += _mismatches(config, alert, test.expect, runs[id(alert)])
        outcomes.append(Outcome(test.name, failures))
    return outcomes


def _mismatches(config: Config, alert: Alert, want: Expectation, runbooks: list[str]) -> list[str]:
    plan = plan_routing(config, alert, PREVIEW_CHANNELS)
    which = f"{alert.alertname} {alert.fingerprint}"
    failures = []
    if want.severity is not None and plan.classification.severity is not want.severity:
        failures.append(
            f"{which}: severity {plan.classification.severity.value}, expected "
            f"{want.severity.value} ({plan.classification.reason})"
        )
    if want.receivers is not None and list(plan.route.receivers) != want.receivers:
        failures.append(f"{which}: receivers {list(plan.route.receivers)}, expected {want.receivers}")
    if want.runbooks is not None and runbooks != want.runbooks:
        failures.append(f"{which}: runbooks {runbooks}, expected {want.runbooks}")
    return failures
