"""Silences: matchers plus a time window. A silenced alert is stored but not notified."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from alertbot.domain.matchers import Matcher, all_match


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def silences(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.active(now) and all_match(self.matchers, labels)


def find_silence(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> Silence | None:
    for silence in silences:
        if silence.silences(labels, now):
            return silence
    return None
