"""What a database's schema is, as comparable values: tables, columns (type, nullability, default,
primary key), indexes (columns, uniqueness, partial-index condition), unique constraints and foreign
keys, read back from the database itself with SQLAlchemy's inspector. Column order is left out (a
column added by a migration comes last), and so are the names SQLite gives unnamed constraints."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa


def schema_of(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    inspector = sa.inspect(conn)
    out: dict[str, dict[str, Any]] = {}
    for table in sorted(inspector.get_table_names()):
        pk = set(inspector.get_pk_constraint(table)["constrained_columns"])
        out[table] = {
            "columns": {
                column["name"]: (
                    column["type"].compile(dialect=conn.dialect),
                    column["nullable"] and column["name"] not in pk,
                    _default(column.get("default")),
                    column["name"] in pk,
                )
                for column in inspector.get_columns(table)
            },
            "indexes": sorted(
                (
                    index["name"],
                    tuple(str(c) for c in index["column_names"]),
                    bool(index["unique"]),
                    _where(index.get("dialect_options", {})),
                )
                for index in inspector.get_indexes(table)
            ),
            "unique": sorted(tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)),
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in inspector.get_foreign_keys(table)
            ),
        }
    return out


def differences(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[str]:
    """Each way ``actual`` differs from ``expected``, one line each (empty when they are equal)."""
    lines = [f"missing table {t}" for t in sorted(expected.keys() - actual.keys())]
    lines += [f"extra table {t}" for t in sorted(actual.keys() - expected.keys())]
    for table in sorted(expected.keys() & actual.keys()):
        want, got = expected[table], actual[table]
        for name in sorted(want["columns"].keys() | got["columns"].keys()):
            if want["columns"].get(name) != got["columns"].get(name):
                lines.append(f"{table}.{name}: expected {want['columns'].get(name)}, got {got['columns'].get(name)}")
        for part in ("indexes", "unique", "foreign_keys"):
            if want[part] != got[part]:
                lines.append(f"{table} {part}: expected {want[part]}, got {got[part]}")
    return lines


def load_schema_module(path: Path) -> ModuleType:
    """An old release's ``alertbot/store/schema.py`` (self-contained: it imports only SQLAlchemy)."""
    spec = importlib.util.spec_from_file_location(f"alertbot_old_{path.stem.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _default(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    # PostgreSQL reports a text default with its cast ('...'::text); SQLite without.
    return text.split("::", 1)[0] if text.startswith("'") else text


def _where(options: dict[str, Any]) -> str | None:
    for key in ("postgresql_where", "sqlite_where"):
        if options.get(key) is not None:
            return " ".join(str(options[key]).split()).lower()
    return None
