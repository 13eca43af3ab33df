"""Retry timing for the outbox: exponential backoff with jitter, ``Retry-After`` honoured."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    initial: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(hours=24)
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> timedelta:
        """Wait before try number ``attempt + 1`` (``attempt`` ≥ 1 tries have failed).

        Backoff doubles from ``initial`` up to ``maximum``; the jitter draws from its upper half so
        that a fleet of retries spreads out. A peer's ``Retry-After`` is a floor, never shortened.
        """
        base = min(self.maximum.total_seconds(), self.initial.total_seconds() * 2 ** max(attempt - 1, 0))
        seconds = base * (0.5 + 0.5 * self.rand())
        if retry_after is not None and retry_after > seconds:
            seconds = retry_after
        return timedelta(seconds=seconds)
