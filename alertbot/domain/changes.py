"""Changes (deployments, config changes, feature flags, traffic shifts) and the pages they cause.

Pure: what a watched Kubernetes object's change amounts to, and which recorded changes an incident
is correlated with ("started 3 min after deployment nutrition-service 1.4.3: canary at 10 % (by deploy-bot)").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from alertbot.domain.parse import format_duration

# How alertbot's own Kubernetes writes show in managedFields: the change watch skips them.
FIELD_MANAGER = "alertbot"
CHANGE_KINDS = ("deployment", "config_change", "feature_flag", "traffic_shift")


@dataclass(frozen=True)
class Change:
    """A recorded change, as correlation sees it."""

    id: int
    kind: str
    service: str
    namespace: str
    version: str
    actor: str
    description: str
    timestamp: datetime

    def what(self) -> str:
        """The change in a few words: always its kind, service and version, then its description —
        ``deployment nutrition-service 1.4.3-rc7: canary at 10 %``. The version is what on-call
        needs to decide on a rollback, so a description is added, never substituted; a service or
        version the description already names (as a word of its own) is not repeated before it."""
        named = [p for p in (self.service, self.version) if p and not _names(self.description, p)]
        head = " ".join([self.kind.replace("_", " "), *named])
        return f"{head}: {self.description}" if self.description else head


C = TypeVar("C", bound="Change")


def _names(text: str, word: str) -> bool:
    """Whether ``text`` has ``word`` as a word of its own (``nutrition-service-canary`` does not
    name ``nutrition-service``, nor ``1.4.3-rc1`` ``1.4.3``)."""
    return re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w.-])", text) is not None


def correlate(changes: Iterable[C], *, service: str, namespace: str, started: datetime, lookback: timedelta) -> list[C]:
    """The changes to ``service`` within ``lookback`` before ``started`` (inclusive at both ends),
    newest first. A change naming no namespace matches any; an alert naming none matches any."""
    if not service:
        return []
    since = started - lookback
    found = [
        c
        for c in changes
        if c.service == service
        and since <= c.timestamp <= started
        and (not c.namespace or not namespace or c.namespace == namespace)
    ]
    return sorted(found, key=lambda c: (c.timestamp, c.id), reverse=True)


def describe(change: Change, started: datetime) -> str:
    """``started 3 min after deployment nutrition-service 1.4.3: canary at 10 % (by deploy-bot)``"""
    gap = started - change.timestamp
    after = f"{int(gap.total_seconds() // 60)} min" if gap >= timedelta(minutes=1) else format_duration(gap)
    by = f" (by {change.actor})" if change.actor else ""
    return f"started {after} after {change.what()}{by}"


# -- what a watched object's change amounts to -------------------------------------------------


def traffic_split(vs: Mapping[str, Any]) -> list[list[list[Any]]]:
    """A VirtualService's weights: per HTTP route, [destination (subset or host), weight] pairs."""
    out = []
    for http in vs.get("spec", {}).get("http") or []:
        pairs = []
        for dest in http.get("route") or []:
            target = dest.get("destination", {})
            pairs.append([str(target.get("subset") or target.get("host", "?")), int(dest.get("weight", 0))])
        out.append(pairs)
    return out


def describe_shift(name: str, before: list[list[list[Any]]], after: list[list[list[Any]]]) -> str | None:
    """``nutrition-service-canary weights canary 10 % → 50 %, stable 90 % → 50 %``; None: nothing moved."""
    moves = []
    for old, new in zip(before, after, strict=False):
        old_weights = dict((str(d), int(w)) for d, w in old)
        for dest, weight in new:
            was = old_weights.get(str(dest))
            if was is not None and was != weight:
                moves.append(f"{dest} {was} % → {weight} %")
    if not moves and before == after:
        return None
    if not moves:
        return f"{name} routes changed"
    return f"{name} weights " + ", ".join(sorted(moves))


def pod_images(deployment: Mapping[str, Any]) -> dict[str, str]:
    """A Deployment's images by container name: a change here is a rollout of a new version."""
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return {str(c.get("name", "")): str(c.get("image", "")) for c in containers}


def image_tag(image: str) -> str:
    """``registry/app:1.4.3`` → ``1.4.3`` (a digest or an untagged image: the image as written)."""
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name and "@" not in name else image


def describe_rollout(name: str, before: Mapping[str, str], after: Mapping[str, str]) -> tuple[str, str] | None:
    """(description, version) of a Deployment whose images changed; None: no image changed."""
    changed = [(c, before.get(c, ""), image) for c, image in sorted(after.items()) if before.get(c) != image]
    if not changed:
        return None
    parts = [
        f"{old or '(none)'} → {new}" if len(changed) == 1 else f"{c}: {old or '(none)'} → {new}"
        for c, old, new in changed
    ]
    return f"{name} image " + ", ".join(parts), image_tag(changed[0][2])


def vs_service(vs: Mapping[str, Any]) -> str:
    """The service a VirtualService routes for: its first host's short name, else its own name."""
    hosts = vs.get("spec", {}).get("hosts") or []
    first = str(hosts[0]) if hosts else ""
    return first.split(".", 1)[0] if first and first != "*" else str(vs.get("metadata", {}).get("name", ""))


def last_manager(obj: Mapping[str, Any]) -> str:
    """Who made the latest change, as far as the API server knows (the newest managedFields entry)."""
    entries = obj.get("metadata", {}).get("managedFields") or []
    timed = [e for e in entries if e.get("manager")]
    if not timed:
        return ""
    return str(max(timed, key=lambda e: str(e.get("time", ""))).get("manager"))
