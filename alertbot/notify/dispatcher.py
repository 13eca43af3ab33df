"""Delivers the outbox: one task per channel, so a slow or failing channel never blocks another.

Each task claims due rows (under a lease), sends them, and records the outcome: delivered;
retry later (429, 5xx, timeouts, network errors — backoff with jitter, ``Retry-After`` honoured);
or failed (other 4xx, or still failing after ``give_up_after``). Rows survive restarts: whatever
was not delivered before a crash is claimed again once its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from alertbot.errors import AlertbotError, NotifyError
from alertbot.notify.base import Notification, Notifier
from alertbot.notify.retry import RetryPolicy
from alertbot.observability import Metrics
from alertbot.store import outbox
from alertbot.store.engine import Store

log = structlog.get_logger("alertbot.dispatcher")

Clock = Callable[[], datetime]


class OutboxDispatcher:
    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], *, metrics: Metrics, clock: Clock,
                 retry: RetryPolicy, send_timeout: timedelta, poll_interval: timedelta,
                 batch_size: int = 16, concurrency: int = 8,
                 scrub: Callable[[str], str] = lambda text: text) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._metrics = metrics
        self._clock = clock
        self._retry = retry
        self._send_timeout = send_timeout.total_seconds()
        self._poll = poll_interval.total_seconds()
        self._batch = batch_size
        self._scrub = scrub
        self._concurrency = concurrency
        # A peer's Retry-After pauses its whole channel, not only the row that got the 429.
        self._paused_until: dict[str, datetime] = {}
        # A claimed batch must be sent before its lease runs out, or another replica takes it too.
        self._lease = send_timeout * batch_size + timedelta(seconds=30)
        self._owner = uuid.uuid4().hex
        self._wakeups = {channel: asyncio.Event() for channel in self._notifiers}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def channels(self) -> list[str]:
        return list(self._notifiers)

    async def start(self) -> None:
        async with self._store.write() as conn:
            if self._store.is_sqlite:
                # One process owns a SQLite file: leases left by a crash belong to nobody now.
                released = await outbox.release_leases(conn)
                if released:
                    log.info("outbox_leases_released", rows=released)
            retried = await outbox.retry_now(conn, self._clock())
        if retried:
            log.info("outbox_retrying_after_restart", rows=retried)
        for channel in self._notifiers:
            self._tasks[channel] = asyncio.create_task(self._run(channel), name=f"outbox-{channel}")

    def wake(self) -> None:
        """New rows were committed: look now instead of at the next poll."""
        for event in self._wakeups.values():
            event.set()

    async def stop(self) -> None:
        """Let each sender finish the notification in hand (never cancel a database transaction
        midway: SQLite would keep its write lock), then hand unsent claimed rows back."""
        self._stopping = True
        self.wake()
        tasks = list(self._tasks.values())
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=self._send_timeout + 5)
            for task in late:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        try:
            async with self._store.write() as conn:
                await outbox.release_leases(conn, self._owner)
        except AlertbotError as exc:
            log.warning("outbox_release_failed", error=exc.message)

    async def _run(self, channel: str) -> None:
        wakeup = self._wakeups[channel]
        while not self._stopping:
            wakeup.clear()
            try:
                paused = self._pause_left(channel)
                if paused > 0:
                    wait = paused
                else:
                    sent = await self.deliver_due(channel)
                    if sent:
                        continue
                    async with self._store.read() as conn:
                        due = await outbox.next_due(conn, channel)
                    wait = self._poll
                    if due is not None:
                        wait = min(wait, max((due - self._clock()).total_seconds(), 0.0))
            except AlertbotError as exc:
                log.warning("outbox_unavailable", channel=channel, error=exc.message)
                wait = self._poll
            except Exception:
                log.exception("outbox_loop_error", channel=channel)
                wait = self._poll
            if wait > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await wakeup.wait()

    async def deliver_due(self, channel: str) -> int:
        """Claim and send the due rows of ``channel`` once; returns how many were claimed.

        A claim holds at most one row per incident (the head of its queue), so the rows of one
        claim can be sent concurrently without reordering any incident's notifications.
        """
        async with self._store.write() as conn:
            rows = await outbox.claim_due(conn, channel, self._clock(), lease=self._lease, owner=self._owner,
                                          limit=self._batch)
        gate = asyncio.Semaphore(self._concurrency)
        deferred: list[int] = []

        async def one(row: outbox.OutboxRow) -> None:
            async with gate:
                if self._stopping:
                    return  # its lease is released on stop; it is sent after restart
                if self._pause_left(channel) > 0:
                    deferred.append(row.id)
                    return
                await self._deliver(channel, row)

        await asyncio.gather(*(one(row) for row in rows))
        if deferred:
            async with self._store.write() as conn:
                await outbox.defer(conn, deferred, until=self._paused_until[channel])
        return len(rows)

    def _pause_left(self, channel: str) -> float:
        until = self._paused_until.get(channel)
        if until is None:
            return 0.0
        left = (until - self._clock()).total_seconds()
        if left <= 0:
            del self._paused_until[channel]
        return max(left, 0.0)

    async def _deliver(self, channel: str, row: outbox.OutboxRow) -> None:
        notifier = self._notifiers[channel]
        bound = log.bind(outbox_id=row.id, incident_id=row.incident_id, channel=channel, event=row.event)
        error: NotifyError | None = None
        try:
            notification = Notification.model_validate(row.payload)
            async with asyncio.timeout(self._send_timeout):
                await notifier.send(notification)
        except NotifyError as exc:
            error = exc
        except TimeoutError:
            error = NotifyError(f"timed out after {self._send_timeout:g}s", retryable=True)
        except Exception as exc:  # a notifier bug must not lose the notification
            bound.exception("notifier_crashed")
            error = NotifyError(f"unexpected {type(exc).__name__}: {exc}", retryable=True)

        if error is not None:
            error = NotifyError(self._scrub(error.message), retryable=error.retryable, retry_after=error.retry_after)
        now = self._clock()
        if error is None:
            outcome = "delivered"
        elif error.retryable and now - row.created_at < self._retry.give_up_after:
            outcome = "retry"
        else:
            outcome = "failed"
        async with self._store.write() as conn:
            if outcome == "delivered":
                await outbox.mark_delivered(conn, row.id, now)
            elif outcome == "retry":
                assert error is not None
                at = now + self._retry.delay(row.attempts + 1, error.retry_after)
                await outbox.mark_retry(conn, row.id, at=at, error=error.message)
            else:
                assert error is not None
                reason = f"gave up after {row.attempts + 1} attempts: {error.message}" if error.retryable \
                    else error.message
                await outbox.mark_failed(conn, row.id, error=reason)

        self._metrics.notifications.labels(channel, outcome).inc()
        if error is None:
            self._metrics.notification_latency.labels(channel).observe((now - row.created_at).total_seconds())
            bound.info("notification_delivered", attempts=row.attempts + 1)
        elif outcome == "retry":
            assert error is not None
            if error.retry_after:
                self._paused_until[channel] = now + timedelta(seconds=error.retry_after)
            bound.warning("notification_retry", attempts=row.attempts + 1, error=error.message,
                          retry_after=error.retry_after)
        else:
            bound.error("notification_failed", attempts=row.attempts + 1, error=error.message)
