"""Sustained webhook ingest: how many alerts per second each target accepts, and at what latency.

Closed loop: ``--clients`` concurrent senders post Alertmanager webhooks (one new alert each, each its
own group) as fast as the target answers, for ``--seconds``. Targets, one after the other, same
machine, same run:

- a bare aiohttp handler that only parses the JSON and answers 200 (the ceiling: no storage at all);
- ``alertbot serve`` on SQLite (the default) and on PostgreSQL — durable: each 200 is sent after the
  alert and its notifications are committed;
- alerta-server (the closest Python peer: its Alertmanager webhook, on PostgreSQL, under gunicorn with
  one worker per core), when ``--alerta VENV`` names a virtualenv with ``alerta-server``,
  ``psycopg2-binary`` and ``gunicorn`` installed.

    .venv/bin/python bench/ingest.py [--seconds 10] [--clients 32] [--alerta /path/to/venv]

PostgreSQL targets need Debian's ``postgresql`` binaries (a throw-away cluster is started).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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
from tests import postgres  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

PAYLOAD = json.loads((ROOT / "tests/data/payloads/am-highload-nutrition-service-firing.json").read_text())


def webhook(i: int, run: str) -> bytes:
    data = json.loads(json.dumps(PAYLOAD))
    alert = data["alerts"][0]
    alert["fingerprint"] = f"{run}{i:015x}"[-16:]
    alert["labels"]["service"] = f"svc-{run}-{i}"
    data["groupKey"] = f'{{}}:{{service="svc-{run}-{i}"}}'
    return json.dumps(data).encode()


async def drive(url: str, *, clients: int, seconds: float, run: str) -> dict[str, Any]:
    latencies: list[float] = []
    failures: dict[str, int] = {}
    counter = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        stop = time.perf_counter() + seconds

        async def sender() -> None:
            while time.perf_counter() < stop:
                body = webhook(next(counter), run)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                        await resp.read()
                        outcome = "ok" if resp.status in (200, 201, 202) else str(resp.status)
                except aiohttp.ClientError as exc:  # e.g. a keep-alive connection the server closed
                    outcome = type(exc).__name__
                if outcome == "ok":
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures[outcome] = failures.get(outcome, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "accepted": len(latencies),
        "failed": failures,
        "alerts_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
    }


async def measure(
    command: list[str],
    path: str,
    args: argparse.Namespace,
    *,
    run: str,
    probe: str = "/probe",
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            await wait_listening(f"http://127.0.0.1:{port}{probe}", proc)
            await drive(f"http://127.0.0.1:{port}{path}", clients=args.clients, seconds=1.0, run=run + "w")  # warm-up
            result = await drive(f"http://127.0.0.1:{port}{path}", clients=args.clients, seconds=args.seconds, run=run)
        finally:
            proc.terminate()
            proc.wait()
        if not result["accepted"]:
            log.seek(0)
            print(f"{command[0]} accepted nothing; its log ends:\n{log.read()[-2000:].decode(errors='replace')}")
    return result


async def start_once(command: list[str], probe: str, env: dict[str, str]) -> None:
    """Start a target until it answers, then stop it (it has set up its database)."""
    port = free_port()
    proc = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_listening(f"http://127.0.0.1:{port}{probe}", proc)
    finally:
        proc.terminate()
        proc.wait()


def alertbot_command(tmp: str, name: str, url: str) -> list[str]:
    config = Path(tmp) / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": url}, "routes": {"receivers": ["console"]}}))
    return [
        sys.executable,
        "-m",
        "alertbot",
        "serve",
        "--port",
        "{port}",
        "--config",
        str(config),
        "--log-level",
        "warning",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--alerta", type=Path, help="a virtualenv with alerta-server, psycopg2-binary, gunicorn")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    pg = PostgresServer() if postgres.available() else None
    if pg is not None:
        pg.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results["bare aiohttp (parse JSON only)"] = await measure(
                [sys.executable, str(ROOT / "bench/_bare_ingest.py"), "{port}"], "/webhook/alertmanager", args, run="b"
            )
            results["alertbot, SQLite"] = await measure(
                alertbot_command(tmp, "sqlite", f"sqlite:///{tmp}/alertbot.db"),
                "/webhook/alertmanager",
                args,
                run="s",
                cwd=tmp,
            )
            if pg is not None:
                results["alertbot, PostgreSQL"] = await measure(
                    alertbot_command(tmp, "pg", pg.new_database()), "/webhook/alertmanager", args, run="p", cwd=tmp
                )
            if args.alerta is not None and pg is not None:
                database = pg.new_database().replace("postgresql://", "postgres://")
                env = {"DATABASE_URL": database, "AUTH_REQUIRED": "False", "LOG_LEVEL": "WARNING"}
                gunicorn = [str(args.alerta / "bin/gunicorn"), "-b", "127.0.0.1:{port}", "alerta:create_app()"]
                # Workers starting together on an empty database deadlock creating alerta's schema:
                # one worker creates it first.
                await start_once([*gunicorn, "-w", "1"], "/management/healthcheck", env)
                results["alerta-server 9, PostgreSQL"] = await measure(
                    [*gunicorn, "-w", str(os.cpu_count() or 2)],
                    "/webhooks/prometheus",
                    args,
                    run="a",
                    probe="/management/healthcheck",
                    env=env,
                )
    finally:
        if pg is not None:
            pg.cleanup()

    print(f"webhook ingest, {args.clients} concurrent senders, {args.seconds:g} s each, one new alert per webhook\n")
    print(f"{'target':32} {'accepted':>9} {'alerts/s':>9} {'p50 ms':>8} {'p99 ms':>8}  failures")
    for name, r in results.items():
        print(
            f"{name:32} {r['accepted']:9d} {r['alerts_per_s']:9.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}  "
            f"{r['failed'] or '-'}"
        )
    bare = results["bare aiohttp (parse JSON only)"]["alerts_per_s"]
    print()
    for name, r in results.items():
        if name.startswith("alertbot"):
            line = f"{name}: {r['alerts_per_s'] / bare:.2f}x the bare handler (target ≥ 0.5)"
            alerta = results.get("alerta-server 9, PostgreSQL")
            if alerta and alerta["alerts_per_s"] > 0:
                line += f", {r['alerts_per_s'] / alerta['alerts_per_s']:.1f}x alerta-server (target ≥ 3)"
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
