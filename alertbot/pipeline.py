"""The pipeline: Alertmanager's payloads in, committed incidents and outbox rows out.

    accept(payload) ─▶ group commit (ingest/group_commit.py): one transaction for every payload
        waiting ─▶ ingest stages over the batch (ingest/ingest.py) ─▶ 200 ─▶ wake the dispatcher

An alert is acknowledged to Alertmanager only after the transaction holding it and its
notifications has committed, so a crash after a 200 loses nothing. The dead man's switch
(ingest/heartbeat.py) pages when Alertmanager's Watchdog stops arriving. docs/architecture.md
shows the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from alertbot.domain.models import WebhookPayload
from alertbot.ingest.group_commit import GroupCommit
from alertbot.ingest.heartbeat import DeadMansSwitch
from alertbot.ingest.ingest import Ingest, IngestStats
from alertbot.ingest.routing import RoutingPlan, enabled_channels, plan_routing, split_destinations
from alertbot.observability import Metrics
from alertbot.settings import Config
from alertbot.store import outbox
from alertbot.store.engine import Store

__all__ = [
    "Handoff",
    "IngestStats",
    "Pipeline",
    "RoutingPlan",
    "enabled_channels",
    "plan_routing",
    "split_destinations",
]

Clock = Callable[[], datetime]


class Handoff(Protocol):
    """The local dispatcher, as the pipeline sees it: rows of new incidents are inserted already
    leased to it and handed over after commit, so the first send needs no claim round-trip."""

    owner: str
    lease: timedelta

    def hand_off(self, rows: list[outbox.OutboxRow]) -> None: ...

    def wake(self) -> None: ...


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        enabled_channels: Iterable[str],
        metrics: Metrics,
        clock: Clock,
        dispatcher: Handoff,
        run_automations: Callable[[list[int]], None] | None = None,
        max_batch: int = 128,
    ) -> None:
        enabled = list(enabled_channels)
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._dispatcher = dispatcher
        self._run_automations = run_automations
        self._heartbeat = DeadMansSwitch(config, enabled)
        self._ingest = Ingest(
            config, enabled, self._heartbeat, owner=lambda: dispatcher.owner, lease=lambda: dispatcher.lease
        )
        self._group_commit: GroupCommit[WebhookPayload, IngestStats] = GroupCommit(
            self._commit, self._settle, max_batch=max_batch
        )

    def start(self) -> None:
        self._group_commit.start()

    async def stop(self) -> None:
        """Commit everything already accepted into the queue, then stop."""
        await self._group_commit.stop()

    async def accept(self, payload: WebhookPayload) -> IngestStats:
        """Returns once the payload is committed; raises StoreUnavailable if it could not be."""
        return await self._group_commit.submit(payload)

    async def _commit(self, payloads: list[WebhookPayload]) -> list[IngestStats]:
        """One transaction, on the store's writer thread, for every payload of the batch."""
        return await self._store.write(self._ingest.ingest_all, payloads, self._clock())

    def _settle(self, results: list[IngestStats]) -> None:
        """A batch committed: its metrics, its notifications handed to the dispatcher, its runs started."""
        claimable = False
        for stats in results:
            self._record_metrics(stats)
            if stats.handed_off:
                self._dispatcher.hand_off(stats.handed_off)
            if stats.automation_runs and self._run_automations is not None:
                self._run_automations(stats.automation_runs)
            claimable = claimable or stats.notifications > len(stats.handed_off)
        if claimable:
            self._dispatcher.wake()

    def _record_metrics(self, stats: IngestStats) -> None:
        self._metrics.alerts_received.inc(stats.alerts)
        for severity, count in stats.classified.items():
            self._metrics.alerts_classified.labels(severity.value).inc(count)
        for reason, count in stats.suppressed.items():
            self._metrics.alerts_suppressed.labels(reason).inc(count)

    async def check_heartbeat(self) -> bool:
        """Page when the Watchdog is overdue (once, until it returns); True when it paged now."""
        if not self._heartbeat.enabled:
            return False
        paged = await self._store.write(self._heartbeat.check, self._clock())
        if paged:
            self._dispatcher.wake()
        return paged
