"""The placeholders a link template (``context.links``) may use, checked when the config loads."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}\}")
TIMES = ("starts_at", "ends_at", "window_start")
NAMES = frozenset({"service", "namespace", *(f"{t}_{unit}" for t in TIMES for unit in ("ms", "us"))})


def placeholder_problem(template: str) -> str | None:
    """Why a template's placeholder is not one alertbot fills (None: all are)."""
    for match in PLACEHOLDER.finditer(template):
        name, key = match.groups()
        if (name in ("labels", "annotations") and key) or (name in NAMES and not key):
            continue
        known = "labels.NAME, annotations.NAME, " + ", ".join(sorted(NAMES))
        return f"unknown placeholder {match.group(0)!r} (known: {known})"
    return None
