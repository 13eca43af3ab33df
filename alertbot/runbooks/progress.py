"""A run's progress as it happens, for whoever watches it: the CLI prints each step as it starts and
ends, the HTTP API streams the same events (``application/x-ndjson``). A watcher that goes away
never stops the run: a rollback half-applied because a terminal closed would be worse than none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from alertbot.runbooks.steps import StepPlan

log = structlog.get_logger("alertbot.runbooks")

StepState = Literal["started", "done", "failed"]


@dataclass(frozen=True)
class StepEvent:
    """One step of a run starting, done or failed. ``seconds``: how long it took (done/failed);
    ``note``: what it said when done (a warning, e.g. "still failing") or why it failed."""

    state: StepState
    plan: StepPlan
    seconds: float = 0.0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "step",
            "state": self.state,
            "index": self.plan.index,
            "type": self.plan.type,
            "lines": self.plan.lines,
            "seconds": round(self.seconds, 3),
            "note": self.note,
        }


def step_text(event: dict[str, Any]) -> str:
    """A step event (``StepEvent.to_json``, as the API streams it) as one line for a terminal."""
    head = f"step {event['index']} ({event['type']})"
    if event["state"] == "started":
        return f"{head} started: " + "; ".join(event["lines"])
    tail = f": {event['note']}" if event["note"] else ""
    return f"{head} {event['state']} after {event['seconds']:.1f} s{tail}"


Progress = Callable[[StepEvent], Awaitable[None]]


async def tell(progress: Progress | None, event: StepEvent) -> None:
    """Report ``event``; a watcher that fails (its connection closed) is logged and the run goes on."""
    if progress is None:
        return
    try:
        await progress(event)
    except Exception as exc:  # whatever went wrong with the watcher, the run must not stop
        log.info("run_progress_not_delivered", step=event.plan.index, error=type(exc).__name__)
