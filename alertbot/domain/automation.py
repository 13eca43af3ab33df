"""Which automations an alert triggers, and the runbook params they template from its labels.

``match`` is a map of equalities over the matching labels (``severity`` = alertbot's
classification); params may contain ``{{ labels.NAME }}`` placeholders.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def automation_matches(match: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(name, "") == value for name, value in match.items())


def render_params(params: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, str]:
    """Fill ``{{ labels.x }}`` from the alert; a missing label is an error naming it (a runbook must
    never run against an empty target)."""
    out = {}
    for key, template in params.items():
        missing = [m.group(1) for m in _PLACEHOLDER.finditer(template) if not labels.get(m.group(1))]
        if missing:
            raise ValueError(f"param {key!r}: the alert has no label {', '.join(sorted(set(missing)))}")
        out[key] = _PLACEHOLDER.sub(lambda m: labels[m.group(1)], template)
    return out


def from_labels(template: str) -> bool:
    """Whether a param template takes (part of) its value from the alert's labels."""
    return _PLACEHOLDER.search(template) is not None


def outside_targets(patterns: Iterable[str], targets: Iterable[str]) -> list[str]:
    """The ``namespace/name`` targets that match none of the glob ``patterns`` (an automation's
    ``targets`` allow-list); an empty result means every target is allowed."""
    allowed = list(patterns)
    return [t for t in targets if not any(fnmatch.fnmatchcase(t, p) for p in allowed)]
