"""The durable store: an async SQLAlchemy engine, migrated on open, with one write path.

SQLite (the default) runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives
a process crash. Writes are serialised in-process (SQLite has one writer) and use
``BEGIN IMMEDIATE`` so a writer never has to upgrade a read lock. Database failures in the write
path surface as ``StoreUnavailable`` (HTTP 503, Alertmanager retries).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from alertbot.errors import ConfigError, StoreUnavailable
from alertbot.store.schema import migrate

_UNAVAILABLE = (OperationalError, OSError, TimeoutError, ConnectionError)


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
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
    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, *, busy_timeout: timedelta = timedelta(seconds=5)) -> Store:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url(url))
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, busy_timeout)
        store = cls(engine, url)
        try:
            async with store.write() as conn:
                await conn.run_sync(migrate, datetime.now(UTC))
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; commits on exit. Failures of the database become StoreUnavailable."""
        async with self._write_lock:
            try:
                async with self.engine.connect() as raw:
                    conn = await raw.execution_options(alertbot_write=True)
                    async with conn.begin():
                        yield conn
            except IntegrityError:
                raise
            except _UNAVAILABLE as exc:
                raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc
                raise

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc

    async def ping(self) -> None:
        """Raises StoreUnavailable (or TimeoutError, after 2 s) unless the database answers."""
        async with asyncio.timeout(2.0), self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0][:200]


def _configure_sqlite(engine: AsyncEngine, busy_timeout: timedelta) -> None:
    timeout_ms = int(busy_timeout.total_seconds() * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) decide where transactions begin; see _on_begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("alertbot_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
