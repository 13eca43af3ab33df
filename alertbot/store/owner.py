"""One owner per SQLite file: ``alertbot serve`` holds an OS lock on ``<db>.lock`` for its whole life.

A SQLite store is served by one process: at start its dispatcher releases every outbox lease as
nobody's (see ``notify/dispatcher.py``). A second ``alertbot serve`` on the same file (or a rolling
restart that overlaps) would re-send what the first is sending, so it refuses to start instead.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on a file next to the database; the kernel releases it when
the process exits, however it exits (kill -9 included), so a stale lock never blocks a restart.
Short-lived commands that open the store (``runbook history``, ``silence add``, ``runbook run``…)
do not take it: they never touch the outbox leases, and they must work while the daemon runs.
PostgreSQL stores take no lock: replicas share them by design.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from alertbot.errors import AlertbotError
from alertbot.store.engine import sqlite_path


class StoreOwned(AlertbotError):
    """Another process already serves this SQLite store."""

    code = "store_owned"
    exit_code = 1


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def sole_owner(url: str) -> Iterator[Path | None]:
    """Hold the SQLite store's owner lock while the block runs (yields the lock file); a no-op for
    PostgreSQL and in-memory SQLite. Raises ``StoreOwned`` when another process holds it."""
    database = sqlite_path(url)
    if database is None:
        yield None
        return
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise AlertbotError(f"cannot open the store's lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StoreOwned(
                f"{database} is already served by another alertbot process (pid {holder}, lock {path}): "
                "one process owns a SQLite store; stop the other one first, or use PostgreSQL "
                "(storage.url: postgresql://…) to run several replicas"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
