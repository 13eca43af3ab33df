"""The policy services from tables, without HTTP or a database: roles, match-everything detection and
the one silence validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertbot.domain.matchers import Matcher
from alertbot.errors import PayloadError
from alertbot.services.roles import Action, Actor, Roles, Source, refusal
from alertbot.services.silences import SilenceLimits, matches_everything, parse_length, validate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def _members(group: str) -> set[str]:
    return {"SONCALL": {"UGROUPIE"}}.get(group, set())


@pytest.mark.parametrize(
    ("responders", "approvers", "actor", "action", "allowed"),
    [
        ([], [], Actor.slack("U1"), Action.SILENCE, False),  # empty: nobody
        ([], [], Actor.slack("U1"), Action.ACK, False),
        (["U1"], [], Actor.slack("U1"), Action.RESOLVE, True),
        (["U1"], [], Actor.slack("U1"), Action.APPROVE, False),  # responders do not approve
        ([], ["U2"], Actor.slack("U2"), Action.SILENCE, True),  # approvers also respond
        ([], ["U2"], Actor.slack("U2"), Action.APPROVE, True),
        (["*"], [], Actor.slack("UANY"), Action.ACK, True),  # explicitly everyone
        (["*"], [], Actor.slack("UANY"), Action.APPROVE, False),
        ([], ["*"], Actor.slack("UANY"), Action.APPROVE, True),
        (["SONCALL"], [], Actor.slack("UGROUPIE"), Action.SILENCE, True),  # a user group
        (["SONCALL"], [], Actor.slack("UOTHER"), Action.SILENCE, False),
        (["*"], [], Actor.slack(""), Action.ACK, False),  # no user id: nobody
        ([], [], Actor(Source.API, "deploy-bot"), Action.SILENCE, True),  # the API token is the check
        ([], [], Actor(Source.CLI, "cli:alice"), Action.RESOLVE, True),  # shell + store access
    ],
)
async def test_roles(responders: list[str], approvers: list[str], actor: Actor, action: Action, allowed: bool) -> None:
    """Who may do what, by source and role lists."""
    roles = Roles(responders=responders, approvers=approvers, members=_members)
    assert await roles.may(actor, action) is allowed


def test_refusal_names_the_key() -> None:
    """A refusal says which config key would allow the action."""
    assert "slack.responders" in refusal(Actor.slack("U1"), Action.SILENCE)
    assert "slack.runbook_approvers" in refusal(Actor.slack("U1"), Action.APPROVE)


@pytest.mark.parametrize(
    ("matchers", "everything"),
    [
        (['alertname=~".+"'], True),
        (['alertname=~".*"'], True),
        (['alertname=~".*"', 'service=~"(.*)"'], True),
        (['service!~"x^"'], True),  # a negative regex that matches nothing rules nothing out
        (['service!=""'], True),
        (['alertname=~".+"', "service=grocery"], False),
        (["service=grocery"], False),
        (['service=~"gro.*"'], False),
        (['service!="grocery"'], True),  # every alert but grocery's
        (['alertname!="nope"'], True),
        (['alertname!~".+"'], True),  # negative matchers alone require nothing
        (['team=""'], True),  # every alert without a team label
        (['zzz=""'], True),
        (['service=~"gro.*|"'], True),  # an absent service matches too
        (['team=""', "service=grocery"], False),
    ],
)
def test_matches_everything(matchers: list[str], everything: bool) -> None:
    """A silence matches (nearly) every alert when none of its matchers requires anything of an alert:
    negative matchers and `name=""` alone are as broad as `alertname=~".+"`."""
    assert matches_everything([Matcher.parse(m) for m in matchers]) is everything


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("99999999999999w", "too long"),
        ("9999999999w", "too long"),
        (1e300, "too long"),
        ("soon", "invalid duration"),
        (-5, "must not be negative"),
    ],
)
def test_parse_length_never_overflows(raw: str | float, error: str) -> None:
    """Durations too large to represent are a PayloadError (400 / exit 2), not an OverflowError."""
    with pytest.raises(PayloadError, match=error):
        parse_length(raw)


@pytest.mark.parametrize(
    ("matchers", "length", "force", "source", "error"),
    [
        (["service=x"], timedelta(hours=1), False, Source.SLACK, None),
        (["service=x"], timedelta(days=7), False, Source.API, None),
        (["service=x"], timedelta(days=7, seconds=1), False, Source.API, "silences.max_duration"),
        (["service=x"], timedelta(0), False, Source.CLI, "must be positive"),
        (['alertname=~".+"'], timedelta(hours=1), False, Source.API, '"force": true'),
        (['alertname=~".+"'], timedelta(hours=1), False, Source.CLI, "--force"),
        (['alertname=~".+"'], timedelta(hours=1), True, Source.API, None),
        (['alertname=~".+"'], timedelta(hours=1), True, Source.SLACK, "every alert"),  # never from Slack
        ([], timedelta(hours=1), False, Source.API, "at least one matcher"),
    ],
)
def test_validate(matchers: list[str], length: timedelta, force: bool, source: Source, error: str | None) -> None:
    """The one validation every new silence passes, wherever it comes from."""
    parsed = [Matcher.parse(m) for m in matchers]

    def check() -> None:
        validate(parsed, now=NOW, ends_at=NOW + length, limits=SilenceLimits(), force=force, source=source)

    if error is None:
        check()
    else:
        with pytest.raises(PayloadError, match=error):
            check()


@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(r"[0-9]{1,30}(\.[0-9]{1,5})?(ms|s|m|h|d|w)", fullmatch=True),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**40), max_value=10**40),
    )
)
def test_silence_durations_are_a_timedelta_or_a_payload_error(raw: str | float | int) -> None:
    """Whatever a client sends as a duration: a timedelta, or a PayloadError — never another exception."""
    try:
        length = parse_length(raw)
    except PayloadError:
        return
    assert isinstance(length, timedelta)
