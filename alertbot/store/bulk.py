"""Multi-row inserts that give back their ids in the order of the rows given.

PostgreSQL: one ``INSERT … RETURNING`` (SQLAlchemy's insertmanyvalues keeps the order). SQLite:
SQLAlchemy would run one INSERT per row to keep the RETURNING order, so the ids are given
explicitly instead — the next ones after the highest, which is what SQLite would choose itself (the
tables have no AUTOINCREMENT) — and the rows go in one ``executemany``. The transaction holds
SQLite's write lock, so no other writer takes those ids meanwhile; if another process did, the
insert fails whole (and ingest's group commit does it again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_RETURNING: dict[str, sa.Insert] = {}
_PLAIN: dict[str, sa.Insert] = {}
_MAX_ID: dict[str, sa.Select[Any]] = {}


def insert_ordered(conn: Connection, table: sa.Table, values: Sequence[Mapping[str, object]]) -> list[int]:
    """Insert rows with one statement; returns their ids in the order given."""
    if not values:
        return []
    if conn.dialect.name != "sqlite":
        statement = _RETURNING.get(table.name)
        if statement is None:
            statement = _RETURNING[table.name] = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return list(conn.execute(statement, values[0] if len(values) == 1 else list(values)).scalars())
    if table.name not in _PLAIN:
        _PLAIN[table.name] = table.insert()
        _MAX_ID[table.name] = sa.select(sa.func.max(table.c.id))
    first = (conn.execute(_MAX_ID[table.name]).scalar() or 0) + 1
    ids = list(range(first, first + len(values)))
    rows = [{**v, "id": i} for v, i in zip(values, ids, strict=True)]
    conn.execute(_PLAIN[table.name], rows[0] if len(rows) == 1 else rows)
    return ids
