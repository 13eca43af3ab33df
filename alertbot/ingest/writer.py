"""The batch writer: incident outcomes and outbox rows, buffered and written together.

An outcome is applied to the batch view at once (a later payload of the batch — its resolve, say —
sees it) and written to the store when the batch ends, or earlier, the moment a stage asks for the
connection (``conn``) to run a statement of its own: whatever it reads or changes then includes
everything the batch decided before. No stage flushes by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from alertbot.domain.outbox import OutboxIntent
from alertbot.ingest.view import BatchView, with_outcome
from alertbot.store import incidents, outbox
from alertbot.store.incidents import IncidentRecord


class BatchWriter:
    def __init__(self, conn: Connection, view: BatchView, now: datetime, *, owner: str, lease_until: datetime) -> None:
        self._conn, self._view, self._now = conn, view, now
        self._owner, self._lease_until = owner, lease_until
        self._outcomes: list[tuple[int, list[dict[str, Any]], str | None]] = []
        self._queued: list[tuple[outbox.NewRow, list[outbox.OutboxRow] | None]] = []

    def set_outcome(
        self, incident: IncidentRecord, *, destinations: list[dict[str, Any]], suppressed_by: str | None
    ) -> None:
        """Where an incident went (or why not)."""
        self._outcomes.append((incident.id, destinations, suppressed_by))
        self._view.apply(with_outcome(incident, destinations, suppressed_by))

    def enqueue(
        self,
        rows: Sequence[OutboxIntent],
        *,
        hold: tuple[datetime, str] | None = None,
        hand_to: list[outbox.OutboxRow] | None = None,
    ) -> None:
        """Queue notification rows (in this order): held, or leased to the local dispatcher and
        handed over through ``hand_to`` after commit."""
        self._queued += [(outbox.NewRow(row, hold=hold, leased=hand_to is not None), hand_to) for row in rows]

    @property
    def conn(self) -> Connection:
        """The transaction's connection, with everything buffered written first."""
        self.flush()
        return self._conn

    def flush(self) -> None:
        """Write the buffered outcomes and outbox rows."""
        if self._outcomes:
            incidents.set_outcomes(self._conn, self._outcomes, self._now)
            self._outcomes = []
        if self._queued:
            queued, self._queued = self._queued, []
            leased = outbox.enqueue_all(
                self._conn, [new for new, _ in queued], self._now, owner=self._owner, until=self._lease_until
            )
            receivers = [handed for new, handed in queued if new.leased]
            for row, handed in zip(leased, receivers, strict=True):
                assert handed is not None
                handed.append(row)
