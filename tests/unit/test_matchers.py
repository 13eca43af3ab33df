"""Alertmanager-style matchers: syntax, semantics, and round-trips over generated labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertbot.domain.matchers import Matcher, MatchOp, parse_label_args

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)
values = st.text(max_size=30)


@given(names, st.sampled_from(list(MatchOp)), values)
def test_string_form_round_trips(name: str, op: MatchOp, value: str) -> None:
    """str(matcher) parses back to an equal matcher, for any name, operator and value."""
    if op in (MatchOp.RE, MatchOp.NRE):
        value = "".join(c for c in value if c.isalnum())  # keep it a valid regex
    matcher = Matcher.create(name, op, value)
    assert Matcher.parse(str(matcher)) == matcher


@given(names, values, values)
def test_equality_and_negation_are_complements(name: str, value: str, actual: str) -> None:
    """For any label value, exactly one of name="v" and name!="v" matches."""
    labels = {name: actual}
    eq = Matcher.create(name, MatchOp.EQ, value).matches(labels)
    ne = Matcher.create(name, MatchOp.NE, value).matches(labels)
    assert eq != ne
    assert eq == (actual == value)


@given(names, st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text(max_size=10))
def test_regex_is_anchored(name: str, word: str, extra: str) -> None:
    """name=~"word" matches "word" but not "word"+extra (anchored like Alertmanager)."""
    matcher = Matcher.create(name, MatchOp.RE, word)
    assert matcher.matches({name: word})
    assert matcher.matches({name: word + extra}) == (extra == "")
    assert Matcher.create(name, MatchOp.NRE, word).matches({name: word}) is False


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ("severity=critical", {"severity": "critical"}, True),
        ('service=~"nutrition-.*"', {"service": "nutrition-service"}, True),
        ('service!~"nutrition-.*|grocery"', {"service": "grocery"}, False),
        ('team=""', {}, True),  # absent label == ""
        ('team!=""', {}, False),
        ('msg="a \\"quoted\\" value"', {"msg": 'a "quoted" value'}, True),
    ],
)
def test_examples(text: str, labels: dict[str, str], expected: bool) -> None:
    """Documented syntax examples behave as in Alertmanager."""
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["", "=x", "9abc=x", 'a=~"("', 'a="unterminated', "a~x"])
def test_invalid_matchers_are_rejected(text: str) -> None:
    """Malformed matchers raise ValueError naming the matcher."""
    with pytest.raises(ValueError, match="invalid"):
        Matcher.parse(text)


def test_label_args() -> None:
    """CLI k=v arguments become a label set; a value may itself contain '='."""
    assert parse_label_args(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="expected name=value"):
        parse_label_args(["novalue"])


@pytest.mark.parametrize("pattern", ["(a+)+", "(a|aa)*", "(.*a){12}"])
def test_a_hostile_label_value_cannot_stall_a_regex_matcher(pattern: str) -> None:
    """Regex matchers run in time linear in the label's length (RE2, as Alertmanager): a silence like
    service=~"(a+)+" against a 10,000-character label answers at once — Python's backtracking engine
    never finished on it (each extra character doubled the time; 22 took 0.2 s)."""
    hostile = {"service": "a" * 10_000 + "!"}
    assert Matcher.parse(f'service=~"{pattern}"').matches(hostile) is False
    assert Matcher.parse(f'service!~"{pattern}"').matches(hostile) is True


def test_backreferences_are_refused_as_alertmanager_does() -> None:
    """RE2 has no backreferences (nor does Go's regexp, which Alertmanager uses): such a matcher is an
    invalid one, named in the error, not an expensive one."""
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher.parse(r'service=~"(a)\\1"')
