"""An incident's graph: the alert's own query (alertbot/domain/graph_query.py) from Prometheus's
``query_range`` over ``context.lookback`` before the alert started until it ended (or now), the
threshold drawn as a line and the start marked, as a PNG.

Rendering (matplotlib's Agg backend, no display) runs in one worker process, started on the first
graph: never on the event loop, not even sharing its GIL (drawn on a thread, a storm's graphs stalled
the loop by ~90 ms at a time, bench/graph.py), one at a time so a burst of pages cannot take both
cores, and matplotlib's ~90 MiB stay out of the daemon. A worker that dies is replaced on the next
graph.

Graphs are cached per incident: a resolved incident's graph never changes; a firing one's is drawn
again after ``FRESH_FOR``. Callers asking for the same incident while it is being drawn share that
one drawing.
"""

from __future__ import annotations

import asyncio
import functools
import io
import multiprocessing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alertbot.domain.graph_query import GraphQuery, graph_query
from alertbot.domain.models import Severity
from alertbot.errors import NotFound
from alertbot.prometheus import Prometheus, Series

FRESH_FOR = timedelta(seconds=60)  # a firing incident's graph is drawn again after this
CACHED = 64  # graphs kept (about 40 KB each)
MAX_SERIES = 8  # the series drawn, highest peak first; the legend says how many more there were
POINTS = 240  # samples per series across the window
AFTER_END = timedelta(minutes=5)  # drawn past a resolved incident's end, to show the recovery


class NoGraph(NotFound):
    """This incident has nothing to draw: no query, no Prometheus configured, or no data."""

    code = "no_graph"


def graph_title(alertname: str, service: str, severity: Severity) -> str:
    return f"{alertname} {service} ({severity.value})"


@dataclass(frozen=True)
class GraphSubject:
    """What a graph is drawn for: an incident's identity, its alert's query source and its times."""

    incident_id: int
    title: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str
    starts_at: datetime
    ends_at: datetime | None  # None while firing

    @functools.cached_property
    def query(self) -> GraphQuery | None:  # parsed once, though asked by can_draw and by the drawing
        return graph_query(self.annotations, self.generator_url)


@dataclass(frozen=True)
class Graph:
    png: bytes
    query: GraphQuery
    start: datetime
    end: datetime


class Graphs:
    """Draws and caches incidents' graphs. ``prometheus_url`` and ``lookback`` are read per graph,
    so a reload's new values apply to the next one."""

    def __init__(
        self,
        prometheus_url: Callable[[], str | None],
        lookback: Callable[[], timedelta],
        clock: Callable[[], datetime],
    ) -> None:
        self._prometheus_url = prometheus_url
        self._lookback = lookback
        self._clock = clock
        self._worker: ProcessPoolExecutor | None = None
        self._cache: OrderedDict[int, tuple[Graph, datetime | None]] = OrderedDict()  # graph, stale after
        self._drawing: dict[int, asyncio.Task[Graph]] = {}

    def can_draw(self, subject: GraphSubject) -> bool:
        return self._prometheus_url() is not None and subject.query is not None

    async def graph(self, subject: GraphSubject) -> Graph:
        """The incident's graph, from the cache when it is still true; raises ``NoGraph`` or
        ``PrometheusError`` (Prometheus unreachable or refusing the query)."""
        cached = self._cache.get(subject.incident_id)
        if cached is not None and (cached[1] is None or self._clock() < cached[1]):
            self._cache.move_to_end(subject.incident_id)
            return cached[0]
        task = self._drawing.get(subject.incident_id)
        if task is None:
            task = asyncio.create_task(self._draw(subject), name=f"graph-{subject.incident_id}")
            self._drawing[subject.incident_id] = task
            task.add_done_callback(lambda _: self._drawing.pop(subject.incident_id, None))
        return await asyncio.shield(task)  # one caller giving up does not cancel the others' graph

    async def _draw(self, subject: GraphSubject) -> Graph:
        url, query = self._prometheus_url(), subject.query
        if url is None:
            raise NoGraph("no graph: prometheus.url is not configured")
        if query is None:
            raise NoGraph(
                f"no graph for incident {subject.incident_id}: its alert has no query "
                "(no g0.expr in its generatorURL, no alertbot_query annotation)"
            )
        now = self._clock()
        start = subject.starts_at - self._lookback()
        end = min(now, subject.ends_at + AFTER_END) if subject.ends_at is not None else now
        if end <= start:
            end = start + timedelta(minutes=1)
        prometheus = Prometheus(url)
        series = await prometheus.range(query.expr, start, end, _step(start, end))
        if not any(s.points for s in series):
            raise NoGraph(f"no graph: {query.expr} has no data between {start:%H:%M} and {end:%H:%M} UTC")
        # A series younger than half the window (a new service, a new metric) would be a few points
        # at the right edge: draw from its first sample instead, at a finer step.
        first = datetime.fromtimestamp(min(s.points[0][0] for s in series if s.points), UTC)
        if first - start > (end - start) / 2:
            start = max(start, first - _step(first, end) * 5)
            series = await prometheus.range(query.expr, start, end, _step(start, end))
        draw = functools.partial(
            render_png,
            subject.title,
            query,
            alert_first(series, subject.labels, query),
            started=subject.starts_at,
            start=start,
            end=end,
        )
        png = await self._render(draw)
        graph = Graph(png, query, start, end)
        final = subject.ends_at is not None and subject.ends_at + AFTER_END <= now
        self._cache[subject.incident_id] = (graph, None if final else now + FRESH_FOR)
        self._cache.move_to_end(subject.incident_id)
        while len(self._cache) > CACHED:
            self._cache.popitem(last=False)
        return graph

    async def _render(self, draw: functools.partial[bytes]) -> bytes:
        if self._worker is None:
            # spawn: a fresh interpreter, not a fork of this threaded, event-looped process.
            self._worker = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, draw)
        except BrokenProcessPool:
            self._worker = None  # the next graph starts a new worker
            raise NoGraph("no graph: the drawing process died (see alertbot's log)") from None
        except Exception as exc:  # whatever the data made matplotlib raise: a reason, not a crash
            raise NoGraph(f"no graph: drawing failed: {type(exc).__name__}: {str(exc)[:200]}") from None

    async def close(self) -> None:
        """Cancel the drawings in progress and stop the worker process (waiting for it to exit)."""
        for task in self._drawing.values():
            task.cancel()
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.shutdown, wait=True, cancel_futures=True)


def render_png(
    title: str, query: GraphQuery, series: list[Series], *, started: datetime, start: datetime, end: datetime
) -> bytes:
    """The graph as PNG bytes (pure: no state shared between calls). matplotlib is imported on the
    first graph, so a daemon that never draws one does not carry it in memory."""
    from matplotlib import rc_context  # noqa: PLC0415 - see above

    with rc_context({"text.parse_math": False}):  # alert text is shown as written: `$` is not TeX
        return _render(title, query, series, started=started, start=start, end=end)


def _render(
    title: str, query: GraphQuery, drawn: list[Series], *, started: datetime, start: datetime, end: datetime
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - see render_png
    from matplotlib.dates import DateFormatter  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    varying = _varying_labels(drawn)
    figure = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for s in drawn[:MAX_SERIES]:
        times = [t / 86400 for t, _ in s.points]
        label = ", ".join(f"{k}={s.labels[k]}" for k in varying if k in s.labels)[:60] or query.expr[:60]
        # A few samples are drawn as dots too, so even one is seen.
        marker = "o" if len(s.points) < 30 else None
        axes.plot(times, [v for _, v in s.points], linewidth=1.4, marker=marker, markersize=3, label=label)
    if len(drawn) > MAX_SERIES:
        axes.plot([], [], " ", label=f"+{len(drawn) - MAX_SERIES} more series")
    if query.threshold is not None:
        axes.axhline(
            query.threshold,
            color="#d62728",
            linestyle="--",
            linewidth=1.2,
            label=f"{query.comparison} {query.threshold:g}" if query.comparison else f"threshold {query.threshold:g}",
        )
    axes.axvline(_days(started), color="#444444", linestyle=":", linewidth=1.2, label=f"started {started:%H:%M:%S}")
    axes.set_xlim(_days(start), _days(end))
    if all(v >= 0 for s in drawn for _, v in s.points):
        axes.set_ylim(bottom=0)  # rates and ratios: from zero, so the size of a rise is seen true
    clock = "%H:%M:%S" if end - start < timedelta(minutes=15) else "%H:%M"
    axes.xaxis.set_major_formatter(DateFormatter(clock, tz=UTC))  # type: ignore[no-untyped-call]
    axes.set_xlabel("UTC", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    axes.set_title(title[:100], fontsize=10, loc="left")
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def alert_first(series: list[Series], labels: Mapping[str, str], query: GraphQuery) -> list[Series]:
    """The series in drawing order: those of the alert (every label they share with the alert equal
    to the alert's) first, then the rest by how far they go past the threshold in the rule's direction
    (the lowest first for ``<``), so the failing one is drawn even when the query answers hundreds."""

    def of_alert(s: Series) -> bool:
        shared = [k for k in s.labels if k in labels]
        return bool(shared) and all(s.labels[k] == labels[k] for k in shared)

    low = query.comparison in ("<", "<=")

    def extreme(s: Series) -> float:
        values = [v for _, v in s.points]
        if not values:
            return float("-inf")
        return -min(values) if low else max(values)

    return sorted(series, key=lambda s: (not of_alert(s), -extreme(s)))


def _step(start: datetime, end: datetime) -> timedelta:
    return max(timedelta(seconds=1), (end - start) / POINTS)


def _days(at: datetime) -> float:
    """matplotlib's date number: days since its epoch, 1970-01-01 UTC (``matplotlib.dates.get_epoch``)."""
    return at.timestamp() / 86400


def _varying_labels(series: list[Series]) -> list[str]:
    """The label names whose values tell the series apart (all of them for a single series)."""
    names = sorted({k for s in series for k in s.labels})
    if len(series) <= 1:
        return names
    return [k for k in names if len({s.labels.get(k) for s in series}) > 1]
