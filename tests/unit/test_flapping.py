"""The flap-damping and resolve-hysteresis rules, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertbot.domain.flapping import (
    Episode,
    FlapPolicy,
    continuation_reason,
    flap_state,
    resolve_hold,
    transitions,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = FlapPolicy(transitions=6, window=timedelta(minutes=30), quiet=timedelta(minutes=10))


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def test_each_start_and_each_end_inside_the_window_is_one_transition() -> None:
    episodes = [
        Episode(ago(40), ago(35)),  # wholly before the window: 0
        Episode(ago(31), ago(29)),  # started before, ended inside: 1
        Episode(ago(20), ago(10)),  # 2
        Episode(ago(5), None),
    ]  # still firing: 1
    assert transitions(episodes, now=NOW, window=timedelta(minutes=30)) == 4


def test_the_window_edges_are_inclusive() -> None:
    assert transitions([Episode(ago(30), NOW)], now=NOW, window=timedelta(minutes=30)) == 2


def test_flapping_starts_at_the_configured_count() -> None:
    five = [Episode(ago(10), ago(9)), Episode(ago(8), ago(7)), Episode(ago(6), None)]
    assert not flap_state(five, POLICY, NOW).flapping
    six = [*five[:2], Episode(ago(6), ago(5))]
    state = flap_state(six, POLICY, NOW)
    assert state.flapping and state.describe() == "flapping 6×/30m"  # noqa: RUF001
    assert not flap_state(six, None, NOW).flapping  # flap damping off


def test_a_resolve_is_held_for_the_longer_of_resolve_delay_and_the_quiet_period() -> None:
    flapping = flap_state([Episode(ago(m + 1), ago(m)) for m in (1, 3, 5)], POLICY, NOW)
    calm = flap_state([Episode(ago(20), ago(1))], POLICY, NOW)
    assert not resolve_hold(calm, None).held
    assert resolve_hold(calm, timedelta(minutes=5)).delay == timedelta(minutes=5)
    assert resolve_hold(calm, timedelta(minutes=5)).reason == "resolve_delay 5m"
    hold = resolve_hold(flapping, timedelta(minutes=5))
    assert hold.delay == timedelta(minutes=10) and hold.reason.endswith("waiting until quiet for 10m")
    assert resolve_hold(flapping, timedelta(hours=1)).reason == "resolve_delay 1h"


def test_a_refire_continues_the_chain_only_when_flapping_or_its_resolve_was_held() -> None:
    calm = flap_state([Episode(ago(20), ago(1)), Episode(NOW, None)], POLICY, NOW)
    assert continuation_reason(calm, resolve_was_held=False, lead_id=7) is None
    assert continuation_reason(calm, resolve_was_held=True, lead_id=7) == (
        "re-fired while its resolve was held: continues incident 7"
    )
    flapping = flap_state([Episode(ago(m + 1), ago(m)) for m in (1, 3, 5)] + [Episode(NOW, None)], POLICY, NOW)
    assert continuation_reason(flapping, resolve_was_held=False, lead_id=7) == (
        "suppressed: flapping 7×/30m, continues incident 7; PagerDuty not re-triggered"  # noqa: RUF001
    )
