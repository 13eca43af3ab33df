"""The Kubernetes watch: Deployment rollouts and VirtualService weight changes become change events.

For each watched namespace and resource, one ``ListWatch`` keeps up with the API server the way an
informer does: list (noting the collection's resourceVersion), then watch from there; a dropped
stream is resumed from the last resourceVersion seen, after a backoff; ``410 Gone`` (that version
was compacted away) means list again; and every ``resync`` it lists again anyway.

``ChangeRecorder`` judges each object seen against what was last seen of it (kept in the store, so a
change made while alertbot was down shows at the next list): new images → a ``deployment`` event,
moved weights → a ``traffic_shift`` event. Each event's id carries the object's resourceVersion, so
two replicas watching the same cluster record it once. When a VirtualService's weights change and the
weights they replace had proven themselves (in place for ``settle`` with no critical alert for the
service), those are kept as its last-known-good weights (see ``store.kube_objects``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from sqlalchemy.engine import Connection

from alertbot.changes.kube_api import Gone, KubeApi, KubeApiError
from alertbot.domain.changes import (
    FIELD_MANAGER,
    describe_rollout,
    describe_shift,
    last_manager,
    pod_images,
    traffic_split,
    vs_service,
)
from alertbot.domain.jsontypes import KubeObject
from alertbot.errors import AlertbotError
from alertbot.store import change_events, kube_objects
from alertbot.store.engine import Store

log = structlog.get_logger("alertbot.watch")

Clock = Callable[[], datetime]
RESOURCES = ("deployments", "virtualservices")


def collection_path(resource: str, namespace: str, istio_version: str = "v1") -> str:
    if resource == "deployments":
        return f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"/apis/networking.istio.io/{istio_version}/namespaces/{namespace}/virtualservices"


class ListWatch:
    """Keeps one collection in view: list, watch, resume, relist. Runs until cancelled."""

    def __init__(
        self,
        api: KubeApi,
        resource: str,
        namespace: str,
        *,
        on_list: Callable[[str, str, list[KubeObject]], Awaitable[None]],
        on_event: Callable[[str, str, KubeObject], Awaitable[None]],
        resync: timedelta,
        initial_backoff: timedelta,
        max_backoff: timedelta,
    ) -> None:
        self._api, self.resource, self.namespace = api, resource, namespace
        self._on_list, self._on_event = on_list, on_event
        self._resync = resync.total_seconds()
        self._backoff = (initial_backoff.total_seconds(), max_backoff.total_seconds())
        self._path = collection_path(resource, namespace)

    async def _list(self) -> str:
        try:
            items, version = await self._api.list(self._path)
        except KubeApiError as exc:
            if self.resource != "virtualservices" or exc.status != 404 or "/v1beta1/" in self._path:
                raise
            self._path = collection_path(self.resource, self.namespace, "v1beta1")  # older Istio
            items, version = await self._api.list(self._path)
        await self._on_list(self.resource, self.namespace, items)
        return version

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        version: str | None = None
        relist_at = 0.0
        failures = 0
        while True:
            try:
                if version is None or loop.time() >= relist_at:
                    version = await self._list()
                    relist_at = loop.time() + self._resync
                async for kind, obj in self._api.watch(
                    self._path, version, server_timeout=max(relist_at - loop.time(), 1.0)
                ):
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED"):
                        await self._on_event(self.resource, self.namespace, obj)
                failures = 0
            except Gone as exc:
                log.info("watch_expired_relisting", resource=self.resource, namespace=self.namespace, error=exc.message)
                version = None
            except (AlertbotError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                failures += 1
                low, high = self._backoff
                delay = min(low * 2 ** (failures - 1), high) * random.uniform(0.8, 1.2)  # jitter
                log.warning(
                    "watch_interrupted",
                    resource=self.resource,
                    namespace=self.namespace,
                    error=getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay)


class ChangeRecorder:
    """Turns what the watch sees into change events and last-known-good weights."""

    def __init__(self, store: Store, clock: Clock, *, settle: timedelta) -> None:
        self._store, self._clock, self._settle = store, clock, settle

    async def listed(self, resource: str, namespace: str, items: list[KubeObject]) -> None:
        await self._store.write(self._listed, resource, namespace, items, self._clock())

    async def changed(self, resource: str, namespace: str, obj: KubeObject) -> None:
        await self._store.write(self._listed, resource, namespace, [obj], self._clock())

    def _listed(self, conn: Connection, resource: str, namespace: str, items: list[KubeObject], now: datetime) -> int:
        """Record what changed since each object was last seen; returns how many changes were new."""
        before = kube_objects.seen(conn, resource, namespace)
        judge = _virtualservice if resource == "virtualservices" else _deployment
        recorded = 0
        for obj in items:
            meta = obj.get("metadata", {})
            name, version = str(meta.get("name", "")), str(meta.get("resourceVersion", ""))
            if not name:
                continue
            seen = before.get(name)
            state, change, service = judge(namespace, name, obj, seen)
            before_good = (
                seen is not None
                and resource == "virtualservices"
                and kube_objects.proven(
                    conn, service=service, namespace=namespace, since=seen.since, now=now, settle=self._settle
                )
            )
            kube_objects.save(
                conn,
                resource,
                namespace,
                name,
                service=service,
                resource_version=version,
                state=state,
                before=seen,
                before_good=before_good,
                now=now,
            )
            if change is None or last_manager(obj) == FIELD_MANAGER:
                continue  # nothing to record, or alertbot's own runbook change (recorded by the run itself)
            event, created = change_events.record(
                conn,
                source="kubernetes",
                now=now,
                values={
                    **change,
                    "event_id": f"k8s:{resource}:{namespace}/{name}@{version}",
                    "namespace": namespace,
                    "actor": last_manager(obj) or "kubernetes",
                    "links": [],
                    "timestamp": now,
                },
            )
            if created:
                recorded += 1
                log.info("change_recorded", kind=event.kind, service=event.service, description=event.description)
        return recorded


Judged = tuple[Any, dict[str, str] | None, str]  # the state to keep, the change event (if any), the service


def _virtualservice(namespace: str, name: str, obj: KubeObject, before: kube_objects.Seen | None) -> Judged:
    state = traffic_split(obj)
    service = vs_service(obj)
    what = describe_shift(name, before.state, state) if before is not None else None
    change = (
        {
            "kind": "traffic_shift",
            "service": service,
            "version": "",
            "description": what,
            "target": f"virtualservice/{name}",
        }
        if what
        else None
    )
    return state, change, service


def _deployment(namespace: str, name: str, obj: KubeObject, before: kube_objects.Seen | None) -> Judged:
    state = pod_images(obj)
    labels = obj.get("metadata", {}).get("labels") or {}
    service = str(labels.get("app.kubernetes.io/name") or labels.get("app") or name)
    rollout = describe_rollout(name, before.state, state) if before is not None else None
    if rollout is None:
        return state, None, service
    description, tag = rollout
    return (
        state,
        {
            "kind": "deployment",
            "service": service,
            "version": labels.get("app.kubernetes.io/version") or tag,
            "description": description,
            "target": f"deployment/{name}",
        },
        service,
    )


class KubeWatch:
    """Every ListWatch of the configured namespaces, as tasks of the app."""

    def __init__(
        self,
        api: KubeApi,
        recorder: ChangeRecorder,
        namespaces: list[str],
        *,
        resync: timedelta,
        initial_backoff: timedelta,
        max_backoff: timedelta,
    ) -> None:
        self._api = api
        self.watches = [
            ListWatch(
                api,
                resource,
                namespace,
                on_list=recorder.listed,
                on_event=recorder.changed,
                resync=resync,
                initial_backoff=initial_backoff,
                max_backoff=max_backoff,
            )
            for namespace in namespaces
            for resource in RESOURCES
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(w.run(), name=f"watch-{w.resource}-{w.namespace}") for w in self.watches]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._api.close()
