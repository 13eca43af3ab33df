"""What the Kubernetes watch last saw of each object (so a change made while alertbot was down is
still noticed at the next list), and each VirtualService's last-known-good weights."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import kube_objects


@dataclass(frozen=True)
class Seen:
    resource_version: str
    state: Any


@dataclass(frozen=True)
class LastGood:
    namespace: str
    name: str
    weights: list[list[list[Any]]]    # per HTTP route: [destination, weight] pairs
    at: datetime


def seen(conn: Connection, resource: str, namespace: str) -> dict[str, Seen]:
    rows = conn.execute(sa.select(kube_objects.c.name, kube_objects.c.resource_version, kube_objects.c.state)
                        .where(kube_objects.c.resource == resource, kube_objects.c.namespace == namespace))
    return {row.name: Seen(row.resource_version, row.state) for row in rows}


def save(conn: Connection, resource: str, namespace: str, name: str, *, resource_version: str, state: Any,
         good: bool, now: datetime) -> None:
    """Record what was seen; ``good``: also as the last-known-good state (no critical alert firing)."""
    key = (kube_objects.c.resource == resource, kube_objects.c.namespace == namespace, kube_objects.c.name == name)
    values: dict[str, Any] = {"resource_version": resource_version, "state": state, "seen_at": now}
    if good:
        values.update(good_state=state, good_at=now)
    if conn.execute(kube_objects.update().where(*key).values(**values)).rowcount == 0:
        conn.execute(kube_objects.insert().values(resource=resource, namespace=namespace, name=name, **values))


def last_good(conn: Connection, namespace: str, name: str) -> LastGood | None:
    row = conn.execute(sa.select(kube_objects.c.good_state, kube_objects.c.good_at)
                       .where(kube_objects.c.resource == "virtualservices", kube_objects.c.namespace == namespace,
                              kube_objects.c.name == name, kube_objects.c.good_at.is_not(None))).first()
    return LastGood(namespace, name, row.good_state, row.good_at) if row is not None else None
