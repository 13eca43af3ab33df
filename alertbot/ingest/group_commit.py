"""Group commit: concurrent requests share one transaction, each answered after it commits.

    accept(item) ─▶ queue ─▶ one writer task takes every item waiting (up to ``max_batch``)
        ─▶ commit(items) in one transaction ─▶ settle(items, results) ─▶ each waiter answered

A conflict with another replica (an ``IntegrityError``: it committed one of these alerts first)
rolls the transaction back whole; it is done once more, and then finds and de-duplicates that
alert. A batch that fails otherwise is retried one item at a time, so one bad payload does not fail
the others that shared its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from sqlalchemy.exc import IntegrityError

from alertbot.errors import AlertbotError, StoreUnavailable

log = structlog.get_logger("alertbot.ingest")

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    done: asyncio.Future[Result]


class GroupCommit(Generic[Item, Result]):
    """One writer task committing what waits in its queue, one transaction per batch."""

    def __init__(
        self,
        commit: Callable[[list[Item]], Awaitable[list[Result]]],
        settle: Callable[[list[Result]], None],
        *,
        max_batch: int = 128,
        name: str = "pipeline-writer",
    ) -> None:
        self._commit = commit
        self._settle = settle
        self._max_batch = max_batch
        self._name = name
        self._queue: asyncio.Queue[_Waiting[Item, Result] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=self._name)

    async def stop(self) -> None:
        """Commit everything already accepted into the queue, then stop."""
        if self._writer is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def submit(self, item: Item) -> Result:
        """Returns once the item is committed; raises StoreUnavailable if it could not be."""
        if self._writer is None or self._writer.done():
            raise StoreUnavailable("alertbot is shutting down")
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiting(item, done))
        return await done

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch and not self._queue.empty():
                waiting = self._queue.get_nowait()
                if waiting is None:
                    stopping = True
                    break
                batch.append(waiting)
            await self._commit_batch(batch)
            if stopping:
                return

    async def _commit_batch(self, batch: list[_Waiting[Item, Result]]) -> None:
        items = [w.item for w in batch]
        try:
            try:
                results = await self._commit(items)
            except IntegrityError:
                # Another replica (sharing a PostgreSQL store) committed one of these alerts first:
                # this transaction was rolled back whole; done again, it finds that alert and
                # de-duplicates it.
                log.info("ingest_conflict_retried", payloads=len(batch))
                results = await self._commit(items)
        except Exception as exc:
            await self._fail_batch(batch, exc)
            return
        self._settle(results)
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.done.done():
                waiting.done.set_result(result)

    async def _fail_batch(self, batch: list[_Waiting[Item, Result]], exc: Exception) -> None:
        if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
            # One bad payload must not fail the others that shared its commit.
            for waiting in batch:
                await self._commit_batch([waiting])
            return
        if not isinstance(exc, AlertbotError):
            log.exception("ingest_failed")
        for waiting in batch:
            if not waiting.done.done():
                waiting.done.set_exception(exc)
