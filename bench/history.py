"""A populated store: do the per-batch lookups stay cheap when history grows?

Fills a SQLite store quickly (raw ``executemany``, one transaction per 50k rows) with ``--incidents``
incidents over ``--services`` services — ``--firing`` of them firing, the rest resolved, each with
one delivered outbox row — plus ``--pending`` pending outbox rows (one per firing incident, then
more), then times, with the store's own functions:

- ``incidents.firing_sources`` — the inhibition sources (firing criticals) of one ingest batch's
  services (``--batch-services``, 15), one lookup per service as ingest makes them;
- ``outbox.next_due`` and ``outbox.claim_due`` (64 rows, rolled back) for the console channel.

Each figure is the median of ``--repeat`` calls, in milliseconds, on a warm connection.

    .venv/bin/python bench/history.py [--incidents 1000000] [--services 500] [--pending 50000]

``--keep FILE`` leaves the database there (filling 1M incidents takes a minute or two); ``--reuse``
measures an existing one (migrating it first, as ``alertbot serve`` would).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from alertbot.store import incidents, outbox  # noqa: E402
from alertbot.store.engine import Store  # noqa: E402

NOW = datetime.now(UTC)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


INCIDENT_SQL = (
    "INSERT INTO incidents (id, fingerprint, starts_at, status, alertname, service, namespace, severity, reason, "
    "labels, annotations, generator_url, group_key, destinations, created_at, updated_at, resolved_at, ends_at) "
    "VALUES (?, ?, ?, ?, ?, ?, 'prod', ?, 'severity label', ?, ?, '', ?, '[\"console\"]', ?, ?, ?, ?)"
)
OUTBOX_SQL = (
    "INSERT INTO outbox (incident_id, event, channel, target, payload, status, attempts, next_attempt_at, "
    "created_at, delivered_at, fingerprint) VALUES (?, 'trigger', 'console', '', ?, ?, ?, ?, ?, ?, ?)"
)
PAYLOAD = json.dumps({"fingerprint": "x", "summary": "s" * 200, "labels": {"a": "b" * 400}, "details": "d" * 300})


def fill(path: Path, *, total: int, services: int, firing: int, pending: int) -> None:
    """Raw executemany through sqlite3: far faster than the ingest path, same rows."""
    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    firing_ids = set(rng.sample(range(1, total + 1), firing))
    chunk = 50_000
    t0 = time.perf_counter()
    for start in range(1, total + 1, chunk):
        rows, boxes = [], []
        for i in range(start, min(start + chunk, total + 1)):
            service = f"svc-{i % services}"
            began = NOW - timedelta(seconds=(total - i) * 2)
            is_firing = i in firing_ids
            labels = json.dumps({"alertname": "HighErrorRate", "service": service, "pod": f"pod-{i}"})
            rows.append(
                (
                    i,
                    f"{i:016x}",
                    stamp(began),
                    "firing" if is_firing else "resolved",
                    "HighErrorRate",
                    service,
                    "warning",
                    labels,
                    json.dumps({"summary": "error rate high", "description": "x" * 200}),
                    f'{{}}:{{service="{service}"}}',
                    stamp(began),
                    stamp(began),
                    None if is_firing else stamp(began + timedelta(minutes=5)),
                    None if is_firing else stamp(began + timedelta(minutes=5)),
                )
            )
            boxes.append((i, "{}", "delivered", 1, stamp(began), stamp(began), stamp(began), f"{i:016x}"))
        conn.execute("BEGIN")
        conn.executemany(INCIDENT_SQL, rows)
        conn.executemany(OUTBOX_SQL, boxes)
        conn.execute("COMMIT")
    # Pending rows: the firing incidents' first, then more on random incidents, all due now.
    targets = sorted(firing_ids)
    while len(targets) < pending:
        targets.append(rng.randint(1, total))
    due = stamp(NOW - timedelta(seconds=1))
    conn.execute("BEGIN")
    conn.executemany(
        OUTBOX_SQL,
        [(i, PAYLOAD, "pending", 0, due, due, None, f"{i:016x}-p{n}") for n, i in enumerate(targets[:pending])],
    )
    conn.execute("COMMIT")
    conn.close()
    print(f"filled {total} incidents, {pending} pending rows in {time.perf_counter() - t0:.1f} s", flush=True)


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm: compile the statement, load the pages
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


async def measure(path: Path, *, services: int, batch_services: int, repeat: int) -> dict[str, float]:
    store = await Store.open(f"sqlite:///{path}")  # migrates, as serve would
    rng = random.Random(11)
    try:
        with store.engine.connect() as conn:
            wanted = [f"svc-{rng.randrange(services)}" for _ in range(batch_services)]
            out: dict[str, float] = {}
            with conn.begin():
                out["firing_sources"] = median_ms(
                    lambda: [
                        incidents.firing_sources(conn, service=service, namespace=None, severity="critical")
                        for service in wanted
                    ],
                    repeat,
                )
                out["next_due"] = median_ms(lambda: outbox.next_due(conn, "console"), repeat)

            def claim() -> None:
                trans = conn.begin_nested()
                outbox.claim_due(conn, "console", NOW, lease=timedelta(seconds=30), owner="bench", limit=64)
                trans.rollback()

            with conn.begin():
                out["claim_due"] = median_ms(claim, repeat)
            return out
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--firing", type=int, default=5_000)
    parser.add_argument("--pending", type=int, default=50_000)
    parser.add_argument("--batch-services", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="fill into this file and keep it")
    parser.add_argument("--reuse", type=Path, help="measure this already filled file")
    args = parser.parse_args()
    if args.reuse:
        path = args.reuse
    else:
        path = args.keep or Path(tempfile.mkdtemp(prefix="alertbot-history-")) / "alertbot.db"
        asyncio.run(_create(path))
        fill(path, total=args.incidents, services=args.services, firing=args.firing, pending=args.pending)
    figures = asyncio.run(measure(path, services=args.services, batch_services=args.batch_services, repeat=args.repeat))
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    print(
        json.dumps(
            {
                "incidents": args.incidents,
                "db_mib": round(size / 2**20, 1),
                **{k: round(v, 3) for k, v in figures.items()},
            }
        )
    )


async def _create(path: Path) -> None:
    store = await Store.open(f"sqlite:///{path}")
    await store.close()


if __name__ == "__main__":
    main()
