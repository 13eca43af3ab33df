"""The routing tree, Alertmanager-style: first matching child wins unless it says ``continue``.

A node with no ``receivers`` inherits its parent's. The root matches everything. Matching is done
on ``matching_labels`` (the alert's labels with ``severity`` = alertbot's classification).

Receivers are named by kind:
    ``pagerduty``        the PagerDuty Events API (routing key from the environment)
    ``pagerduty:NAME``   the same, with the routing key named NAME (a per-route key)
    ``slack``            Slack, the channel configured for the alert's severity
    ``slack:#channel``   Slack, that channel
    ``console``          one JSON line on stdout
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from alertbot.domain.matchers import Matcher
from alertbot.domain.oncall import QuietHours
from alertbot.domain.parse import Duration

_RECEIVER_RE = re.compile(r"^(pagerduty(:[A-Za-z0-9_-]+)?|console|slack(:\S+)?)$")


def _matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError('matcher must be a string such as severity="critical"')
    return Matcher.parse(value)


MatcherField = Annotated[Matcher, PlainValidator(_matcher), PlainSerializer(str)]


def _receiver(value: str) -> str:
    if not _RECEIVER_RE.match(value):
        raise ValueError(f"unknown receiver {value!r}: use pagerduty, pagerduty:NAME, slack, slack:#channel or console")
    return value


Receiver = Annotated[str, AfterValidator(_receiver)]


class RouteNode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = ""
    matchers: list[MatcherField] = Field(default_factory=list)
    receivers: list[Receiver] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    mode: Literal["live", "shadow"] | None = None  # None: as the parent (the root: live)
    resolve_delay: Duration | None = None  # hold resolves this long; None: as the parent
    escalation: str | None = None  # the oncall.escalations policy its pages follow; None: as the parent
    quiet_hours: QuietHours | None = None  # when its info and warning pages wait; None: as the parent
    routes: list[RouteNode] = Field(default_factory=list)

    def escalations(self) -> list[str]:
        """Every escalation policy named in the tree (checked against ``oncall.escalations``)."""
        own = [self.escalation] if self.escalation else []
        return own + [name for child in self.routes for name in child.escalations()]

    def quiet_hours_anywhere(self) -> bool:
        """Whether any node of the tree names quiet hours."""
        return self.quiet_hours is not None or any(child.quiet_hours_anywhere() for child in self.routes)

    def label(self, path: str) -> str:
        what = self.name or ", ".join(str(m) for m in self.matchers) or "*"
        return f"{path} ({what})"


def default_route_tree() -> RouteNode:
    """The default routes (docs/configuration.md, `routes`): critical → PagerDuty + Slack; warning and
    info → Slack (channel per severity)."""
    return RouteNode.model_validate(
        {
            "receivers": ["slack"],
            "routes": [{"name": "critical", "matchers": ['severity="critical"'], "receivers": ["pagerduty", "slack"]}],
        }
    )


@dataclass(frozen=True)
class RouteMatch:
    """A leaf the alert reached: the path through the tree, the receivers it names, and whether the
    route is in shadow mode (decide and record, send nothing)."""

    path: tuple[str, ...]
    receivers: tuple[str, ...]
    shadow: bool = False
    resolve_delay: timedelta | None = None
    escalation: str | None = None
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class RouteResult:
    matches: tuple[RouteMatch, ...]

    @property
    def receivers(self) -> tuple[str, ...]:
        return self._receivers(None)

    @property
    def live_receivers(self) -> tuple[str, ...]:
        return self._receivers(False)

    @property
    def shadow_receivers(self) -> tuple[str, ...]:
        """Receivers only shadow routes reach (a live route reaching the same one wins)."""
        live = set(self.live_receivers)
        return tuple(r for r in self._receivers(True) if r not in live)

    @property
    def resolve_delay(self) -> timedelta | None:
        """The longest ``resolve_delay`` of the routes reached (a resolve is held that long)."""
        return max((m.resolve_delay for m in self.matches if m.resolve_delay), default=None)

    @property
    def escalation(self) -> str | None:
        """The escalation policy of the first live route reached that names one."""
        return next((m.escalation for m in self.matches if m.escalation and not m.shadow), None)

    @property
    def quiet_hours(self) -> QuietHours | None:
        """The quiet hours of the first live route reached that names some."""
        return next((m.quiet_hours for m in self.matches if m.quiet_hours and not m.shadow), None)

    def _receivers(self, shadow: bool | None) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for match in self.matches:
            if shadow is None or match.shadow == shadow:
                for receiver in match.receivers:
                    seen.setdefault(receiver, None)
        return tuple(seen)


def route(tree: RouteNode, labels: Mapping[str, str]) -> RouteResult:
    root = RouteMatch(
        ("root",), tuple(tree.receivers), tree.mode == "shadow", tree.resolve_delay, tree.escalation, tree.quiet_hours
    )
    return RouteResult(tuple(_walk(tree, labels, root)))


def _walk(node: RouteNode, labels: Mapping[str, str], here: RouteMatch) -> list[RouteMatch]:
    """The leaves reached below ``node``; ``here`` carries what children inherit from it."""
    found: list[RouteMatch] = []
    for index, child in enumerate(node.routes):
        if not all(m.matches(labels) for m in child.matchers):
            continue
        inherited = RouteMatch(
            path=(*here.path, child.label(f"routes[{index}]")),
            receivers=tuple(child.receivers) or here.receivers,
            shadow=here.shadow if child.mode is None else child.mode == "shadow",
            resolve_delay=here.resolve_delay if child.resolve_delay is None else child.resolve_delay,
            escalation=child.escalation or here.escalation,
            quiet_hours=child.quiet_hours or here.quiet_hours,
        )
        found.extend(_walk(child, labels, inherited))
        if not child.continue_:
            break
    return found or [here]
