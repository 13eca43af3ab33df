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

``--storm`` measures the realistic worst case instead: 10,000 new warning alerts of one service, all in
one Alertmanager group (storm control on, as by default), against alertbot on SQLite and PostgreSQL.
Closed loop, one alert per webhook, it reports the rate of each successive 1,000 alerts (a cost that
grows with the storm shows as a falling rate; target: the last 1,000 at >= 80 % of the first). With
``--per-payload 100 --rate 1000`` it is an open loop instead: payloads of 100 alerts sent at 1,000
alerts/s whatever the answers, reporting the rate that got through and the p99 latency (target < 500 ms).

    .venv/bin/python bench/ingest.py --storm [--alerts 10000] [--per-payload 100 --rate 1000]

PostgreSQL targets need Debian's ``postgresql`` binaries (a throw-away cluster is started).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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


STORM_SERVICE = "ai-coach"


def storm_webhook(first: int, count: int, run: str) -> bytes:
    """``count`` new warnings (HighErrorRate of one pod each) of one service, in one group."""
    data = json.loads(json.dumps(PAYLOAD))
    template = data["alerts"][0]
    alerts = []
    for i in range(first, first + count):
        alert = json.loads(json.dumps(template))
        alert["fingerprint"] = f"{run}{i:015x}"[-16:]
        alert["labels"] = {
            "alertname": "HighErrorRate",
            "namespace": "ai-coach",
            "service": STORM_SERVICE,
            "severity": "warning",
            "pod": f"{STORM_SERVICE}-{run}-{i}",
        }
        alert["annotations"] = {"summary": f"High error rate on {STORM_SERVICE} pod {i}"}
        alerts.append(alert)
    data["alerts"] = alerts
    data["groupLabels"] = {"alertname": "HighErrorRate", "service": STORM_SERVICE}
    data["commonLabels"] = {"alertname": "HighErrorRate", "service": STORM_SERVICE, "severity": "warning"}
    data["groupKey"] = f'{{}}:{{alertname="HighErrorRate", service="{STORM_SERVICE}-{run}"}}'
    return json.dumps(data).encode()


async def drive_storm(url: str, *, clients: int, alerts: int, run: str) -> dict[str, Any]:
    """Closed loop, one alert per webhook: the time at which each successive 1,000 were accepted."""
    counter = iter(range(alerts))
    done_at: list[float] = []
    failures: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def sender() -> None:
            for i in counter:
                try:
                    async with session.post(
                        url, data=storm_webhook(i, 1, run), headers={"Content-Type": "application/json"}
                    ) as resp:
                        await resp.read()
                        outcome = "ok" if resp.status == 200 else str(resp.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcome = type(exc).__name__
                if outcome == "ok":
                    done_at.append(time.perf_counter())
                else:
                    failures[outcome] = failures.get(outcome, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(clients)))
    marks = [began, *done_at[999::1000]]
    rates = [1000 / (b - a) for a, b in itertools.pairwise(marks)]
    return {"accepted": len(done_at), "failed": failures, "rates": rates}


async def drive_open(url: str, *, per_payload: int, rate: float, alerts: int, run: str) -> dict[str, Any]:
    """Open loop: payloads of ``per_payload`` alerts sent every ``per_payload / rate`` s, answered or not."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    interval = per_payload / rate
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def send(first: int) -> None:
            body = storm_webhook(first, per_payload, run)
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    outcome = "ok" if resp.status == 200 else str(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if outcome == "ok":
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures[outcome] = failures.get(outcome, 0) + 1

        began = time.perf_counter()
        tasks = []
        for n, first in enumerate(range(0, alerts, per_payload)):
            await asyncio.sleep(max(0.0, began + n * interval - time.perf_counter()))
            tasks.append(asyncio.create_task(send(first)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "accepted": len(latencies) * per_payload,
        "failed": failures,
        "alerts_per_s": len(latencies) * per_payload / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan"),
    }


async def storm_target(
    command: list[str], args: argparse.Namespace, *, cwd: str, run: str, name: str
) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command], cwd=cwd, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            await wait_listening(f"http://127.0.0.1:{port}/probe", proc)
            url = f"http://127.0.0.1:{port}/webhook/alertmanager"
            if args.per_payload > 1:
                result = await drive_open(
                    url, per_payload=args.per_payload, rate=args.rate, alerts=args.alerts, run=run
                )
            else:
                result = await drive_storm(url, clients=args.clients, alerts=args.alerts, run=run)
        finally:
            proc.terminate()
            proc.wait()
        if result["failed"]:
            log.seek(0)
            print(f"{name} failed; its log ends:\n{log.read()[-3000:].decode(errors='replace')}")
    return result


async def storm(args: argparse.Namespace) -> None:
    pg = PostgresServer() if postgres.available() else None
    if pg is not None:
        pg.start()
    results: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("alertbot, SQLite", alertbot_command(tmp, "sqlite", f"sqlite:///{tmp}/alertbot.db"))]
            if pg is not None:
                targets.append(("alertbot, PostgreSQL", alertbot_command(tmp, "pg", pg.new_database())))
            for name, command in targets:
                results[name] = await storm_target(command, args, cwd=tmp, run=name[-1], name=name)
                print(f"{name}: {results[name]}", flush=True)
    finally:
        if pg is not None:
            pg.cleanup()
    if args.per_payload > 1:
        print(
            f"storm: {args.alerts} new warnings of one service in one group, {args.per_payload} per payload, "
            f"sent at {args.rate:g} alerts/s (open loop)\n"
        )
        print(f"{'target':24} {'accepted':>9} {'alerts/s':>9} {'p50 ms':>8} {'p99 ms':>8}  failures")
        for name, r in results.items():
            print(
                f"{name:24} {r['accepted']:9d} {r['alerts_per_s']:9.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}  "
                f"{r['failed'] or '-'}"
            )
        return
    print(
        f"storm: {args.alerts} new warnings of one service in one group, one per webhook, "
        f"{args.clients} concurrent senders\n"
    )
    for name, r in results.items():
        rates = r["rates"]
        ratio = rates[-1] / rates[0] if rates else float("nan")
        print(f"{name}: accepted {r['accepted']}, failures {r['failed'] or '-'}")
        print("  alerts/s per successive 1,000: " + " ".join(f"{x:.0f}" for x in rates))
        print(f"  last 1,000 / first 1,000: {ratio:.2f} (target >= 0.80)")


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
    parser.add_argument("--storm", action="store_true", help="one service's storm in one group (see above)")
    parser.add_argument("--alerts", type=int, default=10_000, help="--storm: how many alerts")
    parser.add_argument("--per-payload", type=int, default=1, help="--storm: alerts per payload (>1: open loop)")
    parser.add_argument("--rate", type=float, default=1000.0, help="--storm open loop: alerts/s sent")
    args = parser.parse_args()
    if args.storm:
        await storm(args)
        return
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
