"""Background tasks, tracked: never a bare ``create_task`` whose failure nobody sees or whose end
nobody waits for. Slack's follow-ups, a page's context, automations' and operators' runbook runs
each keep one ``TaskSet`` and say how it ends: waited for (``idle``), cancelled (``cancel``), or
given a grace period first (``finish``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("alertbot.tasks")
T = TypeVar("T")


class TaskSet:
    """``crashed``: the event logged (with the task's name) when a task ends in an exception other
    than one of ``expected`` — those its starter hears about, or that need no word."""

    def __init__(self, crashed: str, *, expected: tuple[type[BaseException], ...] = ()) -> None:
        self._crashed = crashed
        self._expected = expected
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, name: str, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, whether or not anyone awaits the task
        if error is not None and not isinstance(error, self._expected):
            log.error(self._crashed, task=task.get_name(), error=repr(error))

    async def idle(self) -> None:
        """Wait for every task started so far, and for those they start meanwhile (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every task and wait for each to end."""
        await self.finish(grace=0.0)

    async def finish(self, grace: float) -> None:
        """Let tasks in progress end on their own for up to ``grace`` seconds (a half-applied runbook
        is worse than a slow shutdown), then cancel those still going and wait for them."""
        if not self._tasks:
            return
        late = set(self._tasks)
        if grace > 0:
            _done, late = await asyncio.wait(late, timeout=grace)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
