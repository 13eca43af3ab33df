"""Disk use per alert, and the database size under a constant stream with retention on.

Starts ``alertbot serve`` on SQLite (console notifier, storm control off) and posts Alertmanager
webhooks of one new alert each (its own service and group), each followed by its resolve, at
``--rate`` alerts/s for ``--seconds``. Every ``--every`` seconds it prints the size of the database
(file + WAL) and the incidents stored. At the end: bytes per alert (firing + resolve), from the
growth of the file while retention had not deleted anything yet.

    .venv/bin/python bench/size.py [--rate 50] [--seconds 120] [--retention 30s]

Retention runs every ``--interval`` (5s here, so that its passes happen within the run). With
``--retention D`` (e.g. 30s), retention deletes as fast as the stream adds, and the
size levels off at about rate * D * bytes-per-alert: the steady state of a real deployment is the
same figure with its own rate and ``retention.incidents``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.notify import free_port, wait_listening  # noqa: E402

FIRING = json.loads((ROOT / "tests/data/payloads/am-higherrorrate-nutrition-service-firing.json").read_text())
RESOLVED = json.loads((ROOT / "tests/data/payloads/am-higherrorrate-nutrition-service-resolved.json").read_text())


def body(template: dict[str, Any], i: int) -> bytes:
    data = json.loads(json.dumps(template))
    alert = data["alerts"][0]
    alert["fingerprint"] = f"{i:016x}"
    alert["labels"]["service"] = f"svc-{i}"
    alert["labels"].pop("canary", None)
    data["groupKey"] = f'{{}}:{{service="svc-{i}"}}'
    return json.dumps(data).encode()


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if not p.name.endswith(".lock"))


def incidents(path: Path) -> int:
    with sqlite3.connect(path, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])


async def stream(url: str, path: Path, *, rate: float, seconds: float, every: float) -> list[tuple[float, int, int]]:
    samples: list[tuple[float, int, int]] = []
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            for template in (FIRING, RESOLVED):
                async with session.post(url, data=body(template, i), headers=headers) as resp:
                    await resp.read()

        start = time.perf_counter()
        next_sample = 0.0
        tasks: set[asyncio.Task[None]] = set()
        i = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            if elapsed >= next_sample:
                samples.append((round(elapsed), db_bytes(path), incidents(path)))
                print(
                    f"t={elapsed:5.0f}s  db={db_bytes(path) / 2**20:7.2f} MiB  incidents={samples[-1][2]}", flush=True
                )
                next_sample += every
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--every", type=float, default=15)
    parser.add_argument("--retention", default=None, help="retention.incidents, e.g. 30s (default: 30d)")
    parser.add_argument("--interval", default="5s", help="retention.interval (default here: 5s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alertbot-size-") as tmp:
        measure(Path(tmp), args)


def measure(work: Path, args: argparse.Namespace) -> None:
    path = work / "alertbot.db"
    config: dict[str, Any] = {"storage": {"url": f"sqlite:///{path}"}, "storm": None, "flapping": None}
    config["retention"] = {"incidents": args.retention or "30d", "interval": args.interval}
    (work / "alertbot.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "alertbot", "serve", "--port", str(port), "--config", str(work / "alertbot.yaml")],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stderr", "wb"),  # noqa: SIM115 - the child's
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}/webhook/alertmanager"
    try:
        asyncio.run(wait_listening(url, proc))
        empty = db_bytes(path)
        samples = asyncio.run(stream(url, path, rate=args.rate, seconds=args.seconds, every=args.every))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])
        pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    used = pages * page_size
    print(
        json.dumps(
            {
                "rate": args.rate,
                "seconds": args.seconds,
                "retention": args.retention or "30d",
                "incidents_stored": stored,
                "file_mib": round(db_bytes(path) / 2**20, 2),
                "used_bytes_per_alert": round((used - empty) / max(stored, 1)),
                "samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
