"""Readiness of the store: can it commit a webhook now?

"The database answers a SELECT" is not enough: a full disk, a read-only file system or database
(a PostgreSQL standby after a failover), or a SQLite file deleted or replaced under the running
process all answer reads while every write fails or is lost. ``StoreHealth.check`` therefore
looks at what a commit needs:

1. SQLite: the path still leads to the file this process opened (same device and inode);
2. SQLite: the file system holding it has at least ``MIN_FREE_BYTES`` free (the WAL and the file grow
   with every alert; SQLite may still fit a small commit in its reused WAL when the disk is full,
   so a write probe alone would answer "ready" until the next real batch fails);
3. a real commit: a one-row table (``store_probe``) is updated, within ``PROBE_TIMEOUT``.

A "ready" result is cached for ``cache_for`` (1 s): a burst of probes costs one commit; checks run
one at a time, and while not ready each one looks again. A change of state
is logged once (``store_not_ready`` with the reason, ``store_ready`` when it comes back), and a
write that failed as unavailable since the last check voids the cache; the
reason never goes into the HTTP answer for unauthenticated callers. Everything recovers on its own:
each check starts from scratch.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from alertbot.errors import AlertbotError
from alertbot.store.engine import Store
from alertbot.store.schema import insert_ignore, store_probe

log = structlog.get_logger("alertbot.store")

MIN_FREE_BYTES = 1024 * 1024
PROBE_TIMEOUT = 2.0

_TOUCH = (
    store_probe.update()
    .where(store_probe.c.id == 1)
    .values(checked_at=sa.bindparam("now", type_=store_probe.c.checked_at.type))
)


def _commit_probe(conn: Connection, now: datetime) -> None:
    if conn.execute(_TOUCH, {"now": now}).rowcount == 0:
        insert_ignore(conn, store_probe, {"id": 1, "checked_at": now}, on=["id"])


def free_bytes(directory: str) -> int:
    info = os.statvfs(directory)
    return info.f_bavail * info.f_frsize


class StoreHealth:
    def __init__(
        self,
        store: Store,
        *,
        cache_for: float = 1.0,
        min_free_bytes: int = MIN_FREE_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache_for = cache_for
        self._min_free = min_free_bytes
        self._monotonic = monotonic
        self._checked_at: float | None = None
        self._reason: str | None = None
        self._failures = 0
        self._lock = asyncio.Lock()

    async def check(self) -> str | None:
        """None when the store can commit; otherwise why not (for the log, not for strangers)."""
        async with self._lock:
            now = self._monotonic()
            failures = self._store.write_failures  # a failed write since: look again now
            fresh = self._checked_at is not None and now - self._checked_at < self._cache_for
            if self._reason is not None or not fresh or failures != self._failures:
                reason = await self._probe()
                self._note(reason)
                self._reason, self._checked_at = reason, self._monotonic()
                self._failures = self._store.write_failures
            return self._reason

    async def _probe(self) -> str | None:
        store = self._store
        problem = store.file_problem()
        if problem is not None:
            return problem
        if store.path is not None:
            try:
                free = free_bytes(str(store.path.parent))
            except OSError as exc:
                return f"cannot stat the file system of {store.path}: {exc.strerror}"
            if free < self._min_free:
                return f"the file system holding {store.path} has {free} bytes free (below {self._min_free})"
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await store.write(_commit_probe, datetime.now(UTC))
        except TimeoutError:
            return f"a test commit did not finish within {PROBE_TIMEOUT:g} s"
        except AlertbotError as exc:
            return exc.message
        except sa.exc.SQLAlchemyError as exc:  # e.g. a read-only PostgreSQL transaction
            return f"a test commit failed: {str(getattr(exc, 'orig', None) or exc).splitlines()[0][:200]}"
        return None

    def _note(self, reason: str | None) -> None:
        if reason is not None and reason != self._reason:
            log.warning("store_not_ready", reason=reason)
        elif reason is None and self._reason is not None:
            log.info("store_ready", was=self._reason)
