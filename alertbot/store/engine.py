"""The durable store: SQLAlchemy Core on a dedicated database thread, migrated on open.

Every transaction is a plain synchronous function ``fn(conn, ...)`` run whole on a database thread:
writes on one writer thread (which also serialises them, as SQLite needs), reads on a small pool.
The event loop pays one thread hop per transaction instead of one per statement — measured here,
an async driver costs ~0.9 ms per statement, which capped ingest near 100 alerts/s.

SQLite (the default) runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives
a process crash. Writers use ``BEGIN IMMEDIATE`` so they never have to upgrade a read lock.
Database failures surface as ``StoreUnavailable`` (HTTP 503; Alertmanager retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from alertbot.errors import ConfigError, StoreUnavailable
from alertbot.store.migrations import migrate

P = ParamSpec("P")
T = TypeVar("T")

_UNAVAILABLE = (OperationalError, OSError, TimeoutError, ConnectionError)
_WRITING = "alertbot_write"  # in Connection.info: this transaction writes (SQLite: BEGIN IMMEDIATE)


def sync_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    raise ConfigError(f"storage.url: unsupported scheme in {url.split('://', 1)[0]!r}")


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return None if path in ("", ":memory:") else Path(path)
    return None


def redact_url(url: str) -> str:
    """``postgresql://user:pass@host/db`` → ``postgresql://user:***@host/db``."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


class Store:
    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.path = sqlite_path(url)
        # The SQLite file this store opened (device, inode): writes stop when the path no longer
        # leads to it (deleted or replaced under the running process, see ``file_problem``).
        self._identity: tuple[int, int] | None = None
        self.write_failures = 0  # write transactions that failed as unavailable (readiness rechecks)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertbot-db-write")
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alertbot-db-read")

    @classmethod
    async def open(cls, url: str, *, busy_timeout: timedelta = timedelta(seconds=5)) -> Store:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("sqlite"):
            engine = sa.create_engine(sync_url(url), connect_args={"check_same_thread": False})
            _configure_sqlite(engine, busy_timeout)
        else:
            engine = sa.create_engine(sync_url(url), pool_pre_ping=True)
        store = cls(engine, url)
        try:
            await store.write(migrate, datetime.now(UTC))
            if path is not None:
                info = path.stat()
                store._identity = (info.st_dev, info.st_ino)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    async def write(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` in one write transaction on the writer thread; commit when it returns."""
        return await self._run(self._writer, True, lambda conn: fn(conn, *args, **kwargs))

    async def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` on a reader thread (its own read transaction)."""
        return await self._run(self._readers, False, lambda conn: fn(conn, *args, **kwargs))

    async def _run(self, pool: ThreadPoolExecutor, writing: bool, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            job = loop.run_in_executor(pool, self._transaction, writing, fn)
        except RuntimeError as exc:  # the executor was shut down (an error raised by fn is not this)
            raise StoreUnavailable("store is closed") from exc
        # Shielded: if the caller is cancelled, the transaction still runs to its end (commit or
        # rollback) on its thread; it is never left half-open holding a lock.
        return await asyncio.shield(job)

    def file_problem(self) -> str | None:
        """Why the SQLite file this store opened can no longer take writes that would survive a
        restart (deleted, or replaced by another file), or None. Always None for PostgreSQL."""
        if self._identity is None or self.path is None:
            return None
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return f"the database file {self.path} was deleted under the running process"
        except OSError as exc:
            return f"the database file {self.path} cannot be checked: {exc.strerror}"
        if (info.st_dev, info.st_ino) != self._identity:
            return f"the database file {self.path} was replaced by another file under the running process"
        return None

    def _transaction(self, writing: bool, fn: Callable[[Connection], T]) -> T:
        try:
            return self._begin(writing, fn)
        except StoreUnavailable:
            if writing:
                self.write_failures += 1
            raise

    def _begin(self, writing: bool, fn: Callable[[Connection], T]) -> T:
        if writing and (problem := self.file_problem()) is not None:
            # A commit into a deleted (or replaced) file would be answered 200 and lost at restart.
            raise StoreUnavailable(f"store unavailable: {problem}")
        try:
            with self.engine.connect() as conn:
                # A flag on the pooled connection, not execution_options(): each branched
                # Connection that makes is a reference cycle, left for the collector once per
                # transaction (tests/integration/test_ingest_garbage.py).
                conn.info[_WRITING] = writing
                with conn.begin():
                    return fn(conn)
        except IntegrityError:
            raise
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or _sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATES):
                raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc
            raise

    async def ping(self) -> None:
        """Raises StoreUnavailable (or TimeoutError, after 2 s) unless the database answers."""
        async with asyncio.timeout(2.0):
            await self.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())


# PostgreSQL errors that say "not now" rather than "not this": connection exceptions (08), a
# read-only transaction (25006: a standby after a failover, a database set read-only), insufficient
# resources (53: disk full, out of memory, too many connections), operator intervention (57P:
# shutting down, starting up) and system errors (58: I/O). They are 503s: Alertmanager retries.
_UNAVAILABLE_SQLSTATES = ("08", "25006", "53", "57P", "58")


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or "")


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0][:200]


def _configure_sqlite(engine: Engine, busy_timeout: timedelta) -> None:
    timeout_ms = int(busy_timeout.total_seconds() * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) decide where transactions begin; see _on_begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.info.get(_WRITING, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
