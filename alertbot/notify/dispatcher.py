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
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.engine import Connection

from alertbot.errors import AlertbotError, NotifyError
from alertbot.notify.base import Notification, Notifier, PostedMessage
from alertbot.notify.retry import RetryPolicy
from alertbot.observability import Metrics
from alertbot.store import outbox, slack_messages
from alertbot.store.engine import Store

log = structlog.get_logger("alertbot.dispatcher")

Clock = Callable[[], datetime]


class OutboxDispatcher:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        *,
        metrics: Metrics,
        clock: Clock,
        retry: RetryPolicy,
        send_timeout: timedelta,
        poll_interval: timedelta,
        batch_size: int = 64,
        concurrency: int = 16,
        scrub: Callable[[str], str] = lambda text: text,
    ) -> None:
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
        # A claimed batch must be sent before its lease runs out, or another replica takes it too: it
        # goes out in ceil(batch / concurrency) rounds of at most send_timeout each, plus a margin for
        # clock differences between replicas. The lease is also how long a dead replica's rows wait
        # before another sends them, so it is no longer than that.
        rounds = -(-batch_size // concurrency)
        self._lease = send_timeout * rounds + timedelta(seconds=10)
        self.owner = uuid.uuid4().hex
        self.lease = self._lease
        self._handed: dict[str, list[outbox.OutboxRow]] = {channel: [] for channel in self._notifiers}
        self._wakeups = {channel: asyncio.Event() for channel in self._notifiers}
        # Whether a claim may find something: new claimable rows were committed, or the poll timer
        # or a due retry came round. (Rows handed over directly need no claim.)
        self._claimable = {channel: True for channel in self._notifiers}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def channels(self) -> list[str]:
        return list(self._notifiers)

    async def start(self) -> None:
        def reset(conn: Connection) -> tuple[int, int]:
            # One process owns a SQLite file (``alertbot serve`` holds its lock, see store/owner.py):
            # leases left by a crash belong to nobody now.
            released = outbox.release_leases(conn) if self._store.is_sqlite else 0
            return released, outbox.retry_now(conn, self._clock())

        released, retried = await self._store.write(reset)
        if released:
            log.info("outbox_leases_released", rows=released)
        if retried:
            log.info("outbox_retrying_after_restart", rows=retried)
        for channel in self._notifiers:
            self._tasks[channel] = asyncio.create_task(self._run(channel), name=f"outbox-{channel}")

    def hand_off(self, rows: list[outbox.OutboxRow]) -> None:
        """Rows just committed already leased to this dispatcher: send them without claiming."""
        for row in rows:
            self._handed[row.channel].append(row)
            self._wakeups[row.channel].set()

    def wake(self) -> None:
        """Claimable rows were committed: look now instead of at the next poll."""
        for channel, event in self._wakeups.items():
            self._claimable[channel] = True
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
            await self._store.write(outbox.release_leases, self.owner)
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
                    due = await self._store.read(outbox.next_due, channel)
                    wait = self._poll
                    if due is not None:
                        wait = min(wait, max((due - self._clock()).total_seconds(), 0.0))
                    if wait <= 0:
                        self._claimable[channel] = True
            except AlertbotError as exc:
                log.warning("outbox_unavailable", channel=channel, error=exc.message)
                wait = self._poll
            except Exception:
                log.exception("outbox_loop_error", channel=channel)
                wait = self._poll
            if wait > 0 and not self._stopping:
                try:
                    async with asyncio.timeout(wait):
                        await wakeup.wait()
                except TimeoutError:
                    self._claimable[channel] = True

    async def deliver_due(self, channel: str) -> int:
        """Claim and send the due rows of ``channel`` once; returns how many were claimed.

        A claim holds at most one row per incident (the head of its queue), so the rows of one
        claim can be sent concurrently without reordering any incident's notifications. Their
        outcomes are recorded together, in one transaction.
        """
        handed = self._handed[channel]
        if handed:
            rows, handed[:] = handed[: self._batch], handed[self._batch :]
            rows = await self._keep_lease(rows)
        elif self._claimable[channel]:
            self._claimable[channel] = False
            rows = await self._store.write(
                outbox.claim_due, channel, self._clock(), lease=self._lease, owner=self.owner, limit=self._batch
            )
            self._claimable[channel] = self._claimable[channel] or len(rows) == self._batch
        else:
            rows = []
        if not rows:
            return 0
        gate = asyncio.Semaphore(self._concurrency)
        deferred: list[int] = []

        async def one(row: outbox.OutboxRow) -> _Outcome | None:
            async with gate:
                if self._stopping:
                    return None  # its lease is released on stop; it is sent after restart
                if self._pause_left(channel) > 0:
                    deferred.append(row.id)
                    return None
                return await self._send(channel, row)

        outcomes = [o for o in await asyncio.gather(*(one(row) for row in rows)) if o is not None]
        resume_at = self._clock() + timedelta(seconds=self._pause_left(channel))

        await self._store.write(_record, outcomes, deferred, resume_at)
        for o in outcomes:
            self._report(channel, o)
        return len(rows)

    async def _keep_lease(self, rows: list[outbox.OutboxRow]) -> list[outbox.OutboxRow]:
        """Handed-over rows were leased when committed; after a backlog, renew the lease before
        sending (those whose lease already went to another replica are left to it)."""
        now = self._clock()
        if all(now - row.created_at < self._lease / 2 for row in rows):
            return rows
        kept = set(
            await self._store.write(
                outbox.renew_leases, [r.id for r in rows], owner=self.owner, until=now + self._lease
            )
        )
        return [row for row in rows if row.id in kept]

    def _pause_left(self, channel: str) -> float:
        until = self._paused_until.get(channel)
        if until is None:
            return 0.0
        left = (until - self._clock()).total_seconds()
        if left <= 0:
            del self._paused_until[channel]
        return max(left, 0.0)

    async def _send(self, channel: str, row: outbox.OutboxRow) -> _Outcome:
        """Send one row and decide its outcome (recorded by the caller)."""
        error: NotifyError | None = None
        posted: PostedMessage | None = None
        try:
            notification = Notification.model_validate(row.payload)
            async with asyncio.timeout(self._send_timeout):
                posted = await self._notifiers[channel].send(notification)
        except NotifyError as exc:
            error = exc
        except TimeoutError:
            error = NotifyError(f"timed out after {self._send_timeout:g}s", retryable=True)
        except Exception as exc:  # a notifier bug must not lose the notification
            log.exception("notifier_crashed", outbox_id=row.id, channel=channel)
            error = NotifyError(f"unexpected {type(exc).__name__}: {exc}", retryable=True)

        now = self._clock()
        if error is None:
            return _Outcome(row, "delivered", now, posted=posted)
        message = self._scrub(error.message)
        if error.retryable and now - row.created_at < self._retry.give_up_after:
            if error.retry_after:
                # The peer asked the whole channel to slow down, not just this row.
                self._paused_until[channel] = now + timedelta(seconds=error.retry_after)
            return _Outcome(
                row, "retry", now + self._retry.delay(row.attempts + 1, error.retry_after), message, error.retry_after
            )
        if error.retryable:
            message = f"gave up after {row.attempts + 1} attempts: {message}"
        return _Outcome(row, "failed", now, message)

    def _report(self, channel: str, o: _Outcome) -> None:
        self._metrics.notifications.labels(channel, o.outcome).inc()
        fields = {
            "outbox_id": o.row.id,
            "incident_id": o.row.incident_id,
            "channel": channel,
            "notification": o.row.event,
            "attempts": o.row.attempts + 1,
        }
        if o.outcome == "delivered":
            self._metrics.notification_latency.labels(channel).observe((o.at - o.row.created_at).total_seconds())
            log.info("notification_delivered", **fields)
        elif o.outcome == "retry":
            log.warning("notification_retry", error=o.error, retry_after=o.retry_after, **fields)
        else:
            log.error("notification_failed", error=o.error, **fields)


@dataclass(frozen=True)
class _Outcome:
    row: outbox.OutboxRow
    outcome: str  # delivered | retry | failed
    at: datetime  # when delivered, or when to retry
    error: str = ""
    retry_after: float | None = None
    posted: PostedMessage | None = None  # a message later notifications of the incident edit


def _record(conn: Connection, outcomes: list[_Outcome], deferred: list[int], resume_at: datetime) -> None:
    """The outcomes of one claim, in one transaction; a message a delivery posted is stored with it
    (a retry of a later notification finds it and edits it)."""
    outbox.mark_delivered_many(conn, [(o.row.id, o.at) for o in outcomes if o.outcome == "delivered"])
    for o in outcomes:
        if o.posted is not None:
            slack_messages.save(
                conn,
                incident_id=o.posted.incident_id,
                fingerprint=o.posted.fingerprint,
                target=o.posted.target,
                channel_id=o.posted.channel_id,
                ts=o.posted.ts,
                now=o.at,
            )
        if o.outcome == "retry":
            outbox.mark_retry(conn, o.row.id, at=o.at, error=o.error)
        elif o.outcome == "failed":
            outbox.mark_failed(conn, o.row.id, error=o.error)
    if deferred:
        outbox.defer(conn, deferred, until=resume_at)
