"""SLI value and duration parsing, including property tests over generated input."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertbot.domain.parse import format_duration, parse_duration, parse_sli_value

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("raw", "sli", "expected"),
    [
        ("0.072", "error_rate", 0.072),
        ("7.2%", "error_rate", 0.072),
        (" 7.2 % ", "error_rate", 0.072),
        ("7.2e-02", "error_rate", 0.072),
        ("6.3", "latency", 6.3),
        ("6.3s", "latency", 6.3),
        ("6300ms", "latency", 6.3),
        ("6300000us", "latency", 6.3),
        ("0.105m", "latency", 6.3),
        ("91%", "load", 0.91),
        ("0.91", "load", 0.91),
        ("+Inf", "latency", math.inf),
    ],
)
def test_known_spellings_normalise(raw: str, sli: str, expected: float) -> None:
    """The contract's spellings of one value give the same number ("0.072" == "7.2%")."""
    value = parse_sli_value(raw, sli)
    assert value is not None and value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("raw", "sli"),
    [
        ("", "error_rate"),
        ("high", "error_rate"),
        ("NaN", "latency"),
        ("5ms", "error_rate"),
        ("50%", "latency"),
        ("1.2.3", "load"),
        ("0x10", "load"),
    ],
)
def test_non_values_are_none(raw: str, sli: str) -> None:
    """Text that is not a value for that SLI yields None (the alert then falls through to labels)."""
    assert parse_sli_value(raw, sli) is None


@given(finite)
def test_ratio_and_percent_agree(x: float) -> None:
    """For any ratio r, str(r) and str(r*100)+"%" parse to the same value."""
    plain = parse_sli_value(repr(x), "error_rate")
    percent = parse_sli_value(f"{x * 100!r}%", "error_rate")
    assert plain == pytest.approx(x)
    assert percent == pytest.approx(x, rel=1e-9, abs=1e-12)


@given(finite)
def test_seconds_and_milliseconds_agree(x: float) -> None:
    """For any latency s, "s", "ss" and "(s*1000)ms" parse to the same seconds."""
    assert parse_sli_value(repr(x), "latency") == pytest.approx(x)
    assert parse_sli_value(f"{x!r}s", "latency") == pytest.approx(x)
    assert parse_sli_value(f"{x * 1000!r}ms", "latency") == pytest.approx(x, rel=1e-9, abs=1e-12)


@given(st.text(), st.sampled_from(["error_rate", "latency", "load"]))
def test_parser_never_raises(raw: str, sli: str) -> None:
    """Arbitrary annotation text never crashes classification: a float or None."""
    value = parse_sli_value(raw, sli)
    assert value is None or isinstance(value, float)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("250ms", 0.25), ("2d", 172800), (45, 45), ("1w", 604800)],
)
def test_durations(raw: str | int, seconds: float) -> None:
    """Durations are written as Alertmanager writes them, or as seconds."""
    assert parse_duration(raw) == timedelta(seconds=seconds)


@pytest.mark.parametrize("raw", ["", "10", "10 m", "m10", "1h-5m", "-5", True])
def test_bad_durations_are_rejected(raw: str | int | bool) -> None:
    """A duration that is not one raises ValueError naming the expected form."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_duration_round_trips(seconds: int) -> None:
    """format_duration's output parses back to the same duration."""
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value
