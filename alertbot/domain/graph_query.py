"""Which PromQL an incident's graph draws, and where its threshold line goes.

The query is the alert rule's own expression, which Prometheus puts in the alert's ``generatorURL``
(``/graph?g0.expr=…``); an ``alertbot_query`` annotation overrides it (for a rule whose expression
graphs poorly, or an alert that did not come from Prometheus). A rule's expression ends in its
comparison (``… > 0.05``): drawn without it, the graph shows the value over the whole window and
the threshold as a line, instead of only the moments it was exceeded. ``alertbot_threshold``
overrides the number.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

QUERY_ANNOTATION = "alertbot_query"
THRESHOLD_ANNOTATION = "alertbot_threshold"
MAX_QUERY = 4000  # longer expressions are not graphed (a URL to Prometheus must stay reasonable)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# The last comparison of the expression against a number literal, ``bool`` allowed: `… > 0.05`.
_TRAILING_COMPARISON = re.compile(
    rf"^(?P<left>.*\S)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?:bool\s+)?(?P<bound>{_NUMBER})\s*$", re.S
)
_SET_OPERATOR = re.compile(r"\b(?:and|or|unless)\b")
_COMPARISON = re.compile(r"==|!=|>=|<=|(?<![=!~])[<>]")


@dataclass(frozen=True)
class GraphQuery:
    expr: str  # what is drawn
    threshold: float | None  # the line, when the rule compares against a number
    comparison: str | None  # the rule's operator, e.g. ">"


def graph_query(annotations: Mapping[str, str], generator_url: str) -> GraphQuery | None:
    """The graph of an alert, or None when it carries no query."""
    expr = _without_comments(annotations.get(QUERY_ANNOTATION, "")) or _generator_expr(generator_url)
    if not expr or len(expr) > MAX_QUERY:
        return None
    query = _split_comparison(expr)
    override = annotations.get(THRESHOLD_ANNOTATION, "").strip()
    if override:
        try:
            threshold = float(override)
        except ValueError:
            threshold = math.nan
        if math.isfinite(threshold):  # an unreadable override leaves the rule's own threshold
            return GraphQuery(query.expr, threshold, query.comparison)
    return query


def _without_comments(expr: str) -> str:
    """PromQL without its ``#`` comments (outside quotes): an annotation may keep them, and a
    comment's ``> 5`` must not be taken for the threshold."""
    lines = []
    for line in expr.splitlines():
        quote, end = "", len(line)
        for i, char in enumerate(line):
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'`":
                quote = char
            elif char == "#":
                end = i
                break
        lines.append(line[:end])
    return "\n".join(lines).strip()


def _generator_expr(generator_url: str) -> str:
    try:
        parsed = urllib.parse.urlsplit(generator_url)
    except ValueError:
        return ""
    values = urllib.parse.parse_qs(parsed.query).get("g0.expr")
    return values[0].strip() if values else ""


def _split_comparison(expr: str) -> GraphQuery:
    match = _TRAILING_COMPARISON.match(expr)
    if match is None:
        return GraphQuery(expr, None, None)
    left = match["left"]
    # Split only at the top level, and only the one comparison: `a > 1 or b > 2`, `(x > 1)` and
    # `a > b > 1` (whose left side is itself a filter) keep their whole expression.
    top = _top_level(left)
    if _depth_at_end(left) != 0 or _SET_OPERATOR.search(top) or _COMPARISON.search(top):
        return GraphQuery(expr, None, None)
    return GraphQuery(left, float(match["bound"]), match["op"])


def _top_level(text: str) -> str:
    """``text`` with everything inside brackets, braces and quotes blanked out."""
    out, depth, quote = [], 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
            out.append(" ")
        elif char in "\"'`":
            quote = char
            out.append(" ")
        elif char in "([{":
            depth += 1
            out.append(" ")
        elif char in ")]}":
            depth -= 1
            out.append(" ")
        else:
            out.append(char if depth == 0 else " ")
    return "".join(out)


def _depth_at_end(text: str) -> int:
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
    return depth
