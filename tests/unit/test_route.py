"""The routing tree, silences and inhibition: pure decisions over label sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertbot.domain.inhibit import default_inhibit_rules, inhibiting_rule
from alertbot.domain.matchers import Matcher
from alertbot.domain.models import Severity
from alertbot.domain.route import RouteNode, default_route_tree, route
from alertbot.domain.silence import Silence, find_silence
from alertbot.notify.base import Destination, destinations
from alertbot.settings_sections import SlackChannels


def tree(data: dict[str, object]) -> RouteNode:
    return RouteNode.model_validate(data)


def test_default_tree_follows_the_contract() -> None:
    """critical → PagerDuty + Slack; warning and info → Slack only."""
    t = default_route_tree()
    assert route(t, {"severity": "critical"}).receivers == ("pagerduty", "slack")
    assert route(t, {"severity": "warning"}).receivers == ("slack",)
    assert route(t, {"severity": "info"}).receivers == ("slack",)


def test_first_match_wins_unless_continue() -> None:
    """Siblings are tried in order; `continue: true` lets the next sibling match too."""
    t = tree(
        {
            "receivers": ["console"],
            "routes": [
                {"matchers": ['team="payments"'], "receivers": ["slack:#payments"], "continue": True},
                {"matchers": ['severity="critical"'], "receivers": ["pagerduty"]},
                {"matchers": ['severity=~"critical|warning"'], "receivers": ["slack"]},
            ],
        }
    )
    assert route(t, {"team": "payments", "severity": "critical"}).receivers == ("slack:#payments", "pagerduty")
    assert route(t, {"team": "payments", "severity": "warning"}).receivers == ("slack:#payments", "slack")
    assert route(t, {"severity": "info"}).receivers == ("console",)


def test_nested_routes_inherit_receivers_and_report_their_path() -> None:
    """A child without receivers inherits its parent's; the path names each hop."""
    t = tree(
        {
            "receivers": ["slack"],
            "routes": [
                {
                    "name": "mesh",
                    "matchers": ['namespace="ai-nutritionist"'],
                    "receivers": ["slack:#mesh"],
                    "routes": [{"matchers": ['canary="true"']}],
                }
            ],
        }
    )
    result = route(t, {"namespace": "ai-nutritionist", "canary": "true"})
    assert result.receivers == ("slack:#mesh",)
    assert result.matches[0].path == ("root", "routes[0] (mesh)", 'routes[0] (canary="true")')


def test_destinations_collapse_disabled_channels_into_one_console_line() -> None:
    """With no PagerDuty or Slack secret, a critical alert is one console notification, not two."""
    dests = destinations(["pagerduty", "slack"], Severity.CRITICAL, SlackChannels(), enabled=[])
    assert dests == [Destination("console", "", ("pagerduty", "slack:#alerts-critical"))]


def test_destinations_with_enabled_channels() -> None:
    """Enabled channels are addressed directly; `slack` resolves to the severity's channel."""
    dests = destinations(
        ["pagerduty", "slack", "slack:#team"], Severity.WARNING, SlackChannels(), enabled=["pagerduty", "slack"]
    )
    assert dests == [Destination("pagerduty"), Destination("slack", "#alerts"), Destination("slack", "#team")]


NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def silence(
    matchers: list[str], *, start: timedelta = -timedelta(minutes=1), length: timedelta = timedelta(hours=1)
) -> Silence:
    return Silence(1, tuple(Matcher.parse(m) for m in matchers), NOW + start, NOW + start + length, "me", "")


def test_silence_matches_only_while_active() -> None:
    """A silence mutes matching alerts between its start and end, and nothing else."""
    s = silence(['service="grocery"'])
    assert find_silence([s], {"service": "grocery"}, NOW) is s
    assert find_silence([s], {"service": "recipe"}, NOW) is None
    assert find_silence([s], {"service": "grocery"}, NOW + timedelta(hours=2)) is None
    assert (
        find_silence([silence(['service="grocery"'], start=timedelta(minutes=5))], {"service": "grocery"}, NOW) is None
    )


def test_critical_inhibits_warning_of_same_service_only() -> None:
    """Default rule: a firing critical mutes warnings with equal namespace and service."""
    rules = default_inhibit_rules()
    critical = {"alertname": "ServiceDown", "service": "recipe", "namespace": "n", "severity": "critical"}
    warning = {"alertname": "HighLatency", "service": "recipe", "namespace": "n", "severity": "warning"}
    other = {**warning, "service": "grocery"}
    info = {**warning, "severity": "info"}
    assert inhibiting_rule(rules, warning, [critical, warning]) is rules[0]
    assert inhibiting_rule(rules, other, [critical]) is None
    assert inhibiting_rule(rules, info, [critical]) is None
    assert inhibiting_rule(rules, critical, [critical]) is None
    assert inhibiting_rule(rules, warning, [warning]) is None


def test_resolve_delay_is_inherited_and_the_longest_reached_wins() -> None:
    t = tree(
        {
            "receivers": ["slack"],
            "resolve_delay": "2m",
            "routes": [
                {
                    "matchers": ['team="payments"'],
                    "receivers": ["slack:#payments"],
                    "continue": True,
                    "resolve_delay": "10m",
                },
                {"matchers": ['severity="critical"'], "receivers": ["pagerduty"]},
            ],
        }
    )
    assert route(t, {"severity": "critical"}).resolve_delay == timedelta(minutes=2)
    assert route(t, {"severity": "critical", "team": "payments"}).resolve_delay == timedelta(minutes=10)
    assert route(tree({"receivers": ["slack"]}), {}).resolve_delay is None
