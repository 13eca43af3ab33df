"""What the Kubernetes watch last saw of each object (so a change made while alertbot was down is
still noticed at the next list), and each VirtualService's last-known-good weights.

Last-known-good: weights that stayed in place for ``settle`` with no critical alert for the service
meanwhile. The weights in place when a bad shift happens are exactly that, so they are kept when
the shift replaces them; the weights in place now count too, once they have proven themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store import incidents
from alertbot.store.schema import insert_ignore, kube_objects


@dataclass(frozen=True)
class Seen:
    resource_version: str
    state: Any
    since: datetime


@dataclass(frozen=True)
class LastGood:
    namespace: str
    name: str
    weights: list[list[list[Any]]]  # per HTTP route: [destination, weight] pairs
    at: datetime  # the last moment they were known good


def seen(conn: Connection, resource: str, namespace: str) -> dict[str, Seen]:
    rows = conn.execute(
        sa.select(
            kube_objects.c.name, kube_objects.c.resource_version, kube_objects.c.state, kube_objects.c.state_since
        ).where(kube_objects.c.resource == resource, kube_objects.c.namespace == namespace)
    )
    return {row.name: Seen(row.resource_version, row.state, row.state_since) for row in rows}


def proven(
    conn: Connection, *, service: str, namespace: str, since: datetime, now: datetime, settle: timedelta
) -> bool:
    """Has a state in place since ``since`` proven itself: ``settle`` long, no critical alert meanwhile?"""
    return now - since >= settle and not incidents.critical_since(
        conn, service=service, namespace=namespace, since=since
    )


class _Seen(TypedDict, total=False):
    """The columns ``save`` writes."""

    resource_version: str
    service: str
    seen_at: datetime
    state: object  # what the watch keeps of the object (weights, images)
    state_since: datetime
    good_state: object
    good_at: datetime


def save(
    conn: Connection,
    resource: str,
    namespace: str,
    name: str,
    *,
    service: str,
    resource_version: str,
    state: Any,
    before: Seen | None,
    before_good: bool,
    now: datetime,
) -> None:
    """Record what was seen. When the state changed and the one it replaces had proven itself
    (``before_good``), that one becomes the last-known-good state."""
    key = (kube_objects.c.resource == resource, kube_objects.c.namespace == namespace, kube_objects.c.name == name)
    values: _Seen = {"resource_version": resource_version, "service": service, "seen_at": now}
    if before is None or before.state != state:
        values["state"], values["state_since"] = state, now
    if before is not None and before.state != state and before_good:
        values["good_state"], values["good_at"] = before.state, now
    if before is None and insert_ignore(
        conn,
        kube_objects,
        {"resource": resource, "namespace": namespace, "name": name, **values},
        on=["resource", "namespace", "name"],
    ):
        return
    conn.execute(kube_objects.update().where(*key).values(**values))


def last_good(conn: Connection, namespace: str, name: str, *, now: datetime, settle: timedelta) -> LastGood | None:
    """The weights in place now if they have proven themselves, else the last ones that had."""
    row = conn.execute(
        sa.select(kube_objects).where(
            kube_objects.c.resource == "virtualservices",
            kube_objects.c.namespace == namespace,
            kube_objects.c.name == name,
        )
    ).first()
    if row is None:
        return None
    if proven(conn, service=row.service, namespace=namespace, since=row.state_since, now=now, settle=settle):
        return LastGood(namespace, name, row.state, now)
    if row.good_state is not None:
        return LastGood(namespace, name, row.good_state, row.good_at)
    return None
