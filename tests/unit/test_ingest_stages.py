"""Ingest stages decided from tables, without HTTP or a database (a store read is a function over a
list), in the order an alert meets them: dedup, muting (silences, inhibition, and the inhibition
index), routing, storm, correlation. Continue/flap is domain/flapping.py's (tests/unit/test_flapping.py),
automation matching domain/automation.py's (tests/unit/test_automation.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from alertbot.domain.inhibit import InhibitRule, default_inhibit_rules
from alertbot.domain.matchers import Matcher
from alertbot.domain.models import AlertStatus, Severity
from alertbot.domain.silence import Silence
from alertbot.ingest.routing import route_destinations
from alertbot.ingest.stages import (
    Arrival,
    InhibitMuter,
    SilenceMuter,
    StormStep,
    arrival,
    first_muter,
    mute_may_have_ended,
    recent_changes,
    storm_step,
)
from alertbot.ingest.view import InhibitionSources, Labels
from alertbot.settings import parse_config
from alertbot.settings_sections import StormConfig
from alertbot.store.change_events import ChangeEvent
from alertbot.store.incidents import IncidentRecord

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULE = default_inhibit_rules()[0]
INHIBITED = RULE.describe()


def record(
    incident_id: int,
    severity: str,
    *,
    service: str = "checkout",
    namespace: str = "shop",
    status: str = "firing",
    suppressed_by: str | None = None,
    lead_id: int | None = None,
    group_key: str = "g",
    **labels: str,
) -> IncidentRecord:
    return IncidentRecord(
        id=incident_id,
        fingerprint=f"fp{incident_id}",
        starts_at=NOW,
        status=status,
        alertname=labels.get("alertname", "HighErrorRate"),
        service=service,
        namespace=namespace,
        severity=Severity(severity),
        reason="test",
        sli=None,
        value=None,
        labels={"alertname": "HighErrorRate", "service": service, "namespace": namespace, **labels},
        annotations={},
        generator_url="",
        group_key=group_key,
        destinations=[],
        suppressed_by=suppressed_by,
        lead_id=lead_id,
        ends_at=None,
        created_at=NOW,
        updated_at=NOW,
        resolved_at=None,
    )


def matching(r: IncidentRecord) -> dict[str, str]:
    return {**r.labels, "severity": r.severity.value}


ARRIVAL_CASES = [
    # (the alert's status, what is stored for its fingerprint and startsAt, what the arrival is)
    (AlertStatus.FIRING, None, Arrival.NEW),
    (AlertStatus.RESOLVED, None, Arrival.NEW),  # a resolve never seen firing is stored, and resolved
    (AlertStatus.FIRING, "firing", Arrival.REPEAT),
    (AlertStatus.FIRING, "resolved", Arrival.LATE_COPY),
    (AlertStatus.RESOLVED, "firing", Arrival.RESOLVE),
    (AlertStatus.RESOLVED, "resolved", Arrival.REPEATED_RESOLVE),
]


@pytest.mark.parametrize(("status", "stored", "expected"), ARRIVAL_CASES)
def test_dedup_from_a_table(status: AlertStatus, stored: str | None, expected: Arrival) -> None:
    incident = None if stored is None else record(1, "warning", status=stored)
    assert arrival(status, incident) is expected


MUTE_AGAIN_CASES = [
    (None, None, False),  # not muted: nothing to look at again
    ("silence 3 by alice until 2026-12-01T13:00:00+00:00", None, True),
    (INHIBITED, None, True),
    ("flapping (incident 4)", 4, False),  # continues a chain: ends with it
    ("storm 9: summarised with 12 alerts of its group (incident 5)", None, False),
]


@pytest.mark.parametrize(("suppressed_by", "lead_id", "expected"), MUTE_AGAIN_CASES)
def test_a_repeat_of_a_muted_alert_is_decided_again_from_a_table(
    suppressed_by: str | None, lead_id: int | None, expected: bool
) -> None:
    assert mute_may_have_ended(record(2, "warning", suppressed_by=suppressed_by, lead_id=lead_id)) is expected


ROUTES = {
    "receivers": ["pagerduty", "slack"],
    "routes": [
        {"matchers": ['severity="info"'], "receivers": ["slack"]},
        {"matchers": ['team="data"'], "receivers": ["pagerduty"], "mode": "shadow", "continue": True},
        {"matchers": ['team="data"'], "receivers": ["slack"]},
    ],
}
ROUTING_CASES = [
    # (config, the alert, enabled channels, live channels, shadow channels)
    ({"routes": ROUTES}, record(1, "critical"), ["pagerduty", "slack"], ["pagerduty", "slack"], []),
    ({"routes": ROUTES}, record(1, "info"), ["pagerduty", "slack"], ["slack"], []),
    # PagerDuty not configured: the console stands in for it (and says so)
    ({"routes": ROUTES}, record(1, "critical"), ["slack"], ["console", "slack"], []),
    ({"routes": ROUTES}, record(1, "warning", team="data"), ["pagerduty", "slack"], ["slack"], ["pagerduty"]),
    ({"routes": ROUTES, "mode": "shadow"}, record(1, "critical"), ["pagerduty", "slack"], [], ["pagerduty", "slack"]),
]


@pytest.mark.parametrize(("config", "incident", "enabled", "live", "shadow"), ROUTING_CASES)
def test_routing_from_a_table(
    config: dict[str, object], incident: IncidentRecord, enabled: list[str], live: list[str], shadow: list[str]
) -> None:
    dests, shadowed = route_destinations(parse_config(config), matching(incident), incident.severity, enabled)
    assert sorted(d.channel for d in dests) == live
    assert sorted(d.channel for d in shadowed) == shadow


POLICY = StormConfig(threshold=3)
STORM_CASES = [
    # (policy, group key, group already in a storm, arrivals in the window, step)
    (POLICY, "g", True, None, StormStep.JOIN),  # arrivals not even counted
    (POLICY, "g", False, 4, StormStep.START),
    (POLICY, "g", False, 3, None),  # at the threshold: not yet
    (POLICY, "", False, 99, None),  # no group: never a storm
    (None, "g", True, None, None),  # storm control off
]


@pytest.mark.parametrize(("policy", "group_key", "in_storm", "arrivals", "expected"), STORM_CASES)
def test_storm_from_a_table(
    policy: StormConfig | None, group_key: str, in_storm: bool, arrivals: int | None, expected: StormStep | None
) -> None:
    counted: list[int] = []

    def count() -> int:
        assert arrivals is not None, "arrivals counted when not needed"
        counted.append(arrivals)
        return arrivals

    assert storm_step(policy, record(5, "warning", group_key=group_key), in_storm, count) is expected
    assert len(counted) <= 1


def change(change_id: int, minutes_before: float, *, service: str = "checkout", namespace: str = "shop") -> ChangeEvent:
    return ChangeEvent(
        id=change_id,
        kind="deployment",
        service=service,
        namespace=namespace,
        version="1.4.3",
        actor="deploy-bot",
        description="",
        timestamp=NOW - timedelta(minutes=minutes_before),
        event_id=None,
        links=[],
        source="api",
        created_at=NOW,
    )


CORRELATION_CASES = [
    # (changes of the service, the alert, ids of the correlated changes, newest first)
    ([change(1, 3)], record(9, "warning"), [1]),
    ([change(1, 3), change(2, 1)], record(9, "critical"), [2, 1]),
    ([change(1, 90)], record(9, "warning"), []),  # before the lookback (1 h)
    ([change(1, -2)], record(9, "warning"), []),  # after the alert started
    ([change(1, 3, namespace="other")], record(9, "warning"), []),
    ([change(1, 3)], record(9, "info"), []),  # info alerts are not correlated
]


@pytest.mark.parametrize(("changes", "incident", "expected"), CORRELATION_CASES)
def test_correlation_from_a_table(changes: list[ChangeEvent], incident: IncidentRecord, expected: list[int]) -> None:
    found = recent_changes(incident, lambda service: [c for c in changes if c.service == service], timedelta(hours=1))
    assert [c.id for c in found] == expected


class FakeStore:
    """The firing incidents as the store would answer ``incidents.firing_sources``; counts reads."""

    def __init__(self, firing: list[IncidentRecord]) -> None:
        self.firing = firing
        self.reads: list[tuple[str | None, str | None, str | None]] = []

    def read(
        self, service: str | None, namespace: str | None, severity: str | None
    ) -> Mapping[int, tuple[str, str, Labels]]:
        self.reads.append((service, namespace, severity))
        return {
            r.id: (r.service, r.namespace, matching(r))
            for r in self.firing
            if service in (None, r.service)
            and namespace in (None, r.namespace)
            and severity in (None, r.severity.value)
        }


def inhibitor(
    firing: list[IncidentRecord], rules: list[InhibitRule] | None = None, not_arrived: set[int] | None = None
) -> tuple[InhibitMuter, InhibitionSources, FakeStore]:
    store = FakeStore(firing)
    waiting = {r.key: r for r in firing if r.id in (not_arrived or set())}
    sources = InhibitionSources(rules or [RULE], store.read, waiting)
    return InhibitMuter(rules or [RULE], sources), sources, store


INHIBITION_CASES = [
    # (firing incidents, the target, muted by)
    ([record(1, "critical")], record(2, "warning"), INHIBITED),
    ([record(1, "critical", namespace="other")], record(2, "warning"), None),
    ([record(1, "critical", service="payments")], record(2, "warning"), None),
    ([record(1, "warning")], record(2, "warning"), None),  # not a source
    ([record(1, "critical")], record(2, "info"), None),  # not a target
    ([record(1, "critical")], record(2, "critical"), None),  # a critical is never muted by another
    ([], record(2, "warning"), None),
]


@pytest.mark.parametrize(("firing", "target", "expected"), INHIBITION_CASES)
def test_inhibition_from_a_table(firing: list[IncidentRecord], target: IncidentRecord, expected: str | None) -> None:
    """A firing critical of the same service and namespace mutes a warning, with the rule as reason;
    anything else does not."""
    muter, _, _ = inhibitor(firing)
    assert muter.muted(target, matching(target)) == expected


def test_a_rule_without_service_in_equal_reads_sources_of_any_service() -> None:
    """Sources are narrowed to the target's service only when the rule requires it equal."""
    rule = InhibitRule.model_validate(
        {
            "source_matchers": ['alertname="ClusterDown"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["namespace"],
        }
    )
    down = record(1, "critical", service="kube", alertname="ClusterDown")
    muter, _, store = inhibitor([down], [rule])
    target = record(2, "warning")
    assert muter.muted(target, matching(target)) == rule.describe()
    assert store.reads == [(None, "shop", None)]


def test_sources_not_yet_arrived_do_not_inhibit() -> None:
    """An incident the batch inserted up front counts as a source only from its arrival on."""
    critical = record(1, "critical")
    muter, sources, _ = inhibitor([critical], not_arrived={1})
    target = record(2, "warning")
    assert muter.muted(target, matching(target)) is None
    sources.firing(critical)  # it arrives
    assert muter.muted(target, matching(target)) == INHIBITED


def test_a_source_resolved_in_the_batch_stops_inhibiting() -> None:
    """The batch's own resolves apply to the index at once, without another read."""
    critical = record(1, "critical")
    muter, sources, store = inhibitor([critical])
    target = record(2, "warning")
    assert muter.muted(target, matching(target)) == INHIBITED
    sources.resolved(critical)
    assert muter.muted(target, matching(target)) is None
    assert len(store.reads) == 1


def test_checks_cost_the_same_however_many_warnings_fire() -> None:
    """Flat cost: a storm of 5,000 firing warnings of one service is never read for inhibition — the
    default rule's sources are read once per batch, narrowed to critical, and each check looks up
    only the sources sharing its equal labels."""
    firing = [record(i, "warning", pod=f"p{i}") for i in range(1, 5001)] + [record(9999, "critical", service="db")]
    muter, _, store = inhibitor(firing)
    for i in range(5001, 6001):
        target = record(i, "warning", pod=f"p{i}")
        assert muter.muted(target, matching(target)) is None
    assert store.reads == [("checkout", "shop", "critical")]


def silence(matchers: str, *, starts: timedelta = timedelta(hours=-1), ends: timedelta = timedelta(hours=1)) -> Silence:
    return Silence(
        id=7,
        matchers=(Matcher.parse(matchers),),
        starts_at=NOW + starts,
        ends_at=NOW + ends,
        created_by="alice",
        comment="maintenance",
    )


SILENCE_CASES = [
    ([silence('service="checkout"')], f"silence 7 by alice until {(NOW + timedelta(hours=1)).isoformat()}"),
    ([silence('service="payments"')], None),
    ([silence('service="checkout"', starts=timedelta(minutes=5))], None),  # not started yet
    ([silence('service="checkout"', ends=timedelta(0))], None),  # over
    ([], None),
]


@pytest.mark.parametrize(("silences", "expected"), SILENCE_CASES)
def test_silences_from_a_table(silences: list[Silence], expected: str | None) -> None:
    """An active silence whose matchers match mutes, and says which silence, by whom, until when."""
    target = record(2, "warning")
    assert SilenceMuter(lambda: silences, NOW).muted(target, matching(target)) == expected


def test_muters_answer_in_order_with_their_reason() -> None:
    """Silence first, then inhibition: the first that mutes gives the reason counted in metrics."""
    target = record(2, "warning")
    inhibit, _, _ = inhibitor([record(1, "critical")])
    silenced = SilenceMuter(lambda: [silence('service="checkout"')], NOW)
    nothing = SilenceMuter(lambda: [], NOW)
    assert first_muter([silenced, inhibit], target, matching(target)) == (
        "silenced",
        f"silence 7 by alice until {(NOW + timedelta(hours=1)).isoformat()}",
    )
    assert first_muter([nothing, inhibit], target, matching(target)) == ("inhibited", INHIBITED)
    assert first_muter([nothing], target, matching(target)) is None
