"""Inhibition, as in Alertmanager: a firing source alert mutes matching target alerts.

The default rule: a critical alert for a service inhibits that service's warnings (equal
``namespace`` and ``service``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from alertbot.domain.matchers import all_match
from alertbot.domain.route import MatcherField


class InhibitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source_matchers: list[MatcherField] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        src = ", ".join(map(str, self.source_matchers))
        return f"inhibited by {{{src}}} with equal {self.equal}"


def default_inhibit_rules() -> list[InhibitRule]:
    return [
        InhibitRule.model_validate(
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["namespace", "service"],
            }
        )
    ]


def inhibiting_rule(
    rules: Iterable[InhibitRule], target: Mapping[str, str], sources: Iterable[Mapping[str, str]]
) -> InhibitRule | None:
    """The first rule under which one of the firing ``sources`` inhibits ``target``, if any."""
    candidates = [r for r in rules if all_match(r.target_matchers, target)]
    if not candidates:
        return None
    source_list = list(sources)
    for rule in candidates:
        for source in source_list:
            if source is target or all_match(rule.target_matchers, source):
                # An alert never inhibits itself, nor does another target of the same rule.
                continue
            if all_match(rule.source_matchers, source) and all(
                source.get(name, "") == target.get(name, "") for name in rule.equal
            ):
                return rule
    return None
