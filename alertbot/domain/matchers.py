"""Alertmanager-style label matchers: ``name="value"``, ``name!="value"``, ``name=~"re"``, ``name!~"re"``.

Regular expressions are anchored at both ends and use RE2, as in Alertmanager: matching takes time
linear in the label's length, so no regex in a silence, route or inhibit rule can stall ingest on a
hostile label value (Python's backtracking ``re`` takes exponential time on ``(a+)+``); RE2 has no
backreferences or lookaround, which Alertmanager refuses too. A label that is absent has the value
``""``, so ``team=""`` matches alerts without a ``team`` label.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import re2


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


class _Pattern(Protocol):
    def fullmatch(self, text: str) -> object | None: ...


# dot_nl: "." matches a newline too (Go's (?s), which Alertmanager's anchored matchers behave as);
# log_errors off: an invalid regex is the user's ValueError, not a line on stderr.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.dot_nl = True
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=1024)
def compile_label_regex(value: str) -> _Pattern:
    """A matcher's regular expression, compiled with RE2 (ValueError saying why when it is invalid)."""
    try:
        pattern: _Pattern = re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"invalid regular expression {value!r}: {reason}") from None
    return pattern


_MATCHER_RE = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: _Pattern | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: MatchOp, value: str) -> Matcher:
        regex = None
        if op in (MatchOp.RE, MatchOp.NRE):
            regex = compile_label_regex(value)
        return cls(name, op, value, regex)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse one matcher; the value may be double-quoted (JSON escapes) or bare."""
        match = _MATCHER_RE.match(text)
        if not match:
            raise ValueError(f'invalid matcher {text!r}: expected name="value" (operators = != =~ !~)')
        name, op, raw = match.groups()
        if raw.startswith('"'):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"invalid matcher {text!r}: unterminated or malformed quoted value") from None
            if not isinstance(value, str):
                raise ValueError(f"invalid matcher {text!r}: value must be a string")
        else:
            value = raw
        return cls.create(name, MatchOp(op), value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return actual == self.value
        if self.op is MatchOp.NE:
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op is MatchOp.RE else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{json.dumps(self.value, ensure_ascii=False)}"


def parse_label_args(args: Iterable[str]) -> dict[str, str]:
    """``["service=api", "severity=critical"]`` (CLI style) → a label set."""
    labels: dict[str, str] = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise ValueError(f"invalid label {arg!r}: expected name=value")
        labels[name] = value
    return labels


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
