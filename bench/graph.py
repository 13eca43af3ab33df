"""Incident graphs: how long one takes to draw, and how long the last of a storm's graphs waits.

- Render: ``render_png`` for one series, for the 8 it draws at most, and for a query answering 300
  series (the worst realistic case: a ratio `by (pod)` during a storm of one service — 8 are drawn).
  The baseline, measured in the same run, is the floor: a bare matplotlib Figure plotting the same
  points and saving a PNG, no styling.
- Storm: 20 pages of one service at once, each its own incident, through ``Graphs`` (one worker
  process, so graphs never take both cores; its start is included) against an in-process Prometheus
  fake answering 1 series.
  Reported: when the last graph is ready, and the event loop's worst stall meanwhile (drawing must
  never block it).
- Memory: this process's peak RSS before and after the storm: what graphs cost the daemon itself
  (matplotlib lives in the worker process).

    .venv/bin/python bench/graph.py
"""

from __future__ import annotations

import asyncio
import io
import math
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alertbot.context.graph import Graphs, GraphSubject, render_png  # noqa: E402
from alertbot.domain.graph_query import GraphQuery  # noqa: E402
from alertbot.prometheus import Series  # noqa: E402
from tests.fakes.prometheus import FakePrometheus  # noqa: E402

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
START = NOW - timedelta(hours=1, minutes=5)
QUERY = GraphQuery("sum by (pod) (rate(istio_requests_total[5m]))", 0.05, ">")


def series(count: int) -> list[Series]:
    return [
        Series(
            {"pod": f"nutrition-service-7d9f-{i:03d}"},
            [(START.timestamp() + j * 16.25, 0.02 + 0.01 * i / count + 0.005 * math.sin(j / 7)) for j in range(240)],
        )
        for i in range(count)
    ]


def baseline(data: list[Series]) -> bytes:
    # Imported here, after the storm measured this process's memory without matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for s in data[:8]:
        axes.plot([t for t, _ in s.points], [v for _, v in s.points])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def timed(fn: object, *args: object, runs: int = 15, **kwargs: object) -> float:
    """Median milliseconds of ``runs`` calls (after one warm-up)."""
    assert callable(fn)
    fn(*args, **kwargs)
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(*args, **kwargs)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def storm(pages: int = 20) -> tuple[float, float]:
    prometheus = FakePrometheus([0.0], curve=lambda t: 0.07)
    runner = web.AppRunner(prometheus.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    graphs = Graphs(lambda: f"http://127.0.0.1:{port}", lambda: timedelta(hours=1), lambda: NOW)
    subjects = [
        GraphSubject(i, f"HighErrorRate nutrition-service #{i}", {}, {"alertbot_query": "x > 0.05"}, "", NOW, None)
        for i in range(1, pages + 1)
    ]
    stall = 0.0
    done = False

    async def watch_loop() -> None:
        nonlocal stall
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            stall = max(stall, time.perf_counter() - t - 0.005)

    watcher = asyncio.create_task(watch_loop())
    t = time.perf_counter()
    await asyncio.gather(*(graphs.graph(s) for s in subjects))
    last = time.perf_counter() - t
    done = True
    await watcher
    await graphs.close()
    await runner.cleanup()
    return last * 1000, stall * 1000


def main() -> None:
    # The storm first, while this process has not imported matplotlib: its RSS is the daemon's side.
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    last, stall = asyncio.run(storm())
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"storm of 20 pages: last graph after {last:.0f} ms; worst event-loop stall {stall:.1f} ms")
    print(f"daemon-side peak RSS: {rss_before:.0f} MiB before the first graph, {rss_after:.0f} MiB after")
    for count in (1, 8, 300):
        data = series(count)
        ours = timed(render_png, "HighErrorRate nutrition-service", QUERY, data, started=NOW, start=START, end=NOW)
        floor = timed(baseline, data)
        print(f"render {count:>3} series: {ours:6.1f} ms (baseline {floor:6.1f} ms, x{ours / floor:.2f})")


if __name__ == "__main__":
    main()
