"""Webhook → PagerDuty latency and sustained throughput through the whole pipeline.

Starts a fake PagerDuty (in this process), then for each target — a bare aiohttp handler that forwards
straight to PagerDuty (the baseline), and `alertbot serve` with durable SQLite storage — sends
Alertmanager webhooks at a fixed rate (open loop) and measures, per alert, the time from sending the
webhook to PagerDuty receiving the trigger. Prints p50/p99 and alerts/s for both, and the difference.

Both targets run side by side, the i-th webhook sent to each at the same moment, after ``--warmup``
seconds of the same load that are not measured (connections opened, caches filled). This machine's
speed drifts by tens of percent from minute to minute (a fixed Python loop took 0.71 to 1.14 s
within 20 s here), so measuring one target after the other charged the drift to whichever ran in
the slow minute. The bare handler costs the machine ~2 % of a core at 200/s.

    .venv/bin/python bench/notify.py [--rate 200] [--seconds 10] [--warmup 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
KEY = "R0UT1NGKEYbench000000000000000001"
PAYLOAD = json.loads((ROOT / "tests/data/payloads/am-servicedown-recipe-service-firing.json").read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FakePagerDuty:
    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.app = web.Application()
        self.app.router.add_post("/v2/enqueue", self.enqueue)

    async def enqueue(self, request: web.Request) -> web.Response:
        event = await request.json()
        details = event.get("payload", {}).get("custom_details", {})
        self.received.setdefault(details.get("fingerprint", ""), time.perf_counter())
        return web.json_response({"status": "success", "dedup_key": event.get("dedup_key", "")}, status=202)


def webhook_body(i: int, run: str) -> tuple[str, bytes]:
    data = json.loads(json.dumps(PAYLOAD))
    fingerprint = f"{run}{i:012x}"[-16:]
    alert = data["alerts"][0]
    alert["fingerprint"] = fingerprint
    alert["labels"]["service"] = f"svc-{i}"
    data["groupKey"] = f'{{}}:{{service="svc-{i}"}}'  # one group per alert: no storm control
    return fingerprint, json.dumps(data).encode()


async def wait_listening(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"target exited with {proc.returncode}")
            try:
                async with session.post(url, data=b"{}", headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("target did not start")


@dataclass
class Run:
    """What one target did in a run."""

    sent: int
    ok: int
    latencies_ms: list[float]
    elapsed_s: float


async def drive(
    targets: list[tuple[aiohttp.ClientSession, str, str]], pd: FakePagerDuty, *, rate: float, seconds: float
) -> list[Run]:
    """Open loop: ``rate`` webhooks per second to each (session, url, fingerprint tag) for
    ``seconds`` — the i-th webhook of every target at the same moment — then wait until PagerDuty has
    them all."""
    total = int(rate * seconds)
    sent: list[dict[str, float]] = [{} for _ in targets]
    statuses: list[list[int]] = [[] for _ in targets]

    async def one(t: int, i: int) -> None:
        session, url, tag = targets[t]
        fingerprint, body = webhook_body(i, tag)
        sent[t][fingerprint] = time.perf_counter()
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            statuses[t].append(resp.status)

    start = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks += [asyncio.create_task(one(t, i)) for t in range(len(targets))]
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and not all(f in pd.received for each in sent for f in each):
        await asyncio.sleep(0.01)
    runs = []
    for each, codes in zip(sent, statuses, strict=True):
        elapsed = max(pd.received.get(f, start) for f in each) - start
        latencies = [(pd.received[f] - each[f]) * 1000 for f in each if f in pd.received]
        runs.append(Run(sent=total, ok=codes.count(200), latencies_ms=latencies, elapsed_s=elapsed))
    return runs


def summary(runs: list[Run]) -> dict[str, Any]:
    latencies = sorted(ms for s in runs for ms in s.latencies_ms)
    return {
        "sent": sum(s.sent for s in runs),
        "delivered": len(latencies),
        "ok": sum(s.ok for s in runs),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "alerts_per_s": len(latencies) / sum(s.elapsed_s for s in runs),
    }


@dataclass
class Target:
    name: str
    tag: str  # fingerprint prefix
    command: list[str]  # ``{port}`` is replaced
    cwd: str | None = None
    env: dict[str, str] | None = None
    runs: list[Run] = field(default_factory=list)


async def run_targets(targets: list[Target], pd: FakePagerDuty, args: argparse.Namespace) -> None:
    """Start every target, warm them up, then measure them side by side: the i-th webhook goes to
    every target at the same moment, so all see the same machine. The load generator's own garbage
    collector is off while it measures (its pauses would be charged to whichever target it timed)."""
    procs: list[subprocess.Popen[bytes]] = []
    sessions: list[aiohttp.ClientSession] = []
    try:
        urls = []
        for target in targets:
            port = free_port()
            proc = subprocess.Popen(
                [part.replace("{port}", str(port)) for part in target.command],
                cwd=target.cwd,
                env=target.env,
                stdout=subprocess.DEVNULL,
            )
            procs.append(proc)
            await wait_listening(f"http://127.0.0.1:{port}/probe", proc)
            urls.append(f"http://127.0.0.1:{port}/webhook/alertmanager")
            sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)))
        if args.warmup > 0:
            warm = [(session, url, t.tag + "w") for session, url, t in zip(sessions, urls, targets, strict=True)]
            await drive(warm, pd, rate=args.rate, seconds=args.warmup)
        gc.collect()
        gc.disable()
        try:
            measured = [(session, url, t.tag) for session, url, t in zip(sessions, urls, targets, strict=True)]
            for target, result in zip(
                targets, await drive(measured, pd, rate=args.rate, seconds=args.seconds), strict=True
            ):
                target.runs.append(result)
        finally:
            gc.enable()
    finally:
        for session in sessions:
            await session.close()
        for proc in procs:
            proc.terminate()
            proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks per second (one alert each)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first, per target")
    args = parser.parse_args()

    pd = FakePagerDuty()
    runner = web.AppRunner(pd.app, access_log=None)
    await runner.setup()
    pd_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", pd_port).start()
    events_url = f"http://127.0.0.1:{pd_port}/v2/enqueue"

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "alertbot.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "storage": {"url": f"sqlite:///{tmp}/alertbot.db"},
                    "pagerduty": {"events_url": events_url},
                    "routes": {"receivers": ["pagerduty"]},
                }
            )
        )
        alertbot = [sys.executable, "-m", "alertbot", "serve", "--port", "{port}", "--config", str(config)]
        base = Target(
            "bare aiohttp handler", "b", [sys.executable, str(ROOT / "bench/_baseline.py"), "{port}", events_url]
        )
        ours = Target(
            "alertbot (SQLite, outbox)",
            "a",
            [*alertbot, "--log-level", "warning"],
            cwd=tmp,
            env={**os.environ, "ALERTBOT_PAGERDUTY_ROUTING_KEY": KEY},
        )
        await run_targets([base, ours], pd, args)
    await runner.cleanup()

    print(
        f"webhook → PagerDuty, {args.rate:g} alerts/s to each target for {args.seconds:g} s, side by side, "
        "one alert per webhook\n"
    )
    print(f"{'target':28} {'sent':>6} {'200s':>6} {'paged':>6} {'p50 ms':>8} {'p99 ms':>8} {'alerts/s':>9}")
    results = {t.name: summary(t.runs) for t in (base, ours)}
    for name, r in results.items():
        print(
            f"{name:28} {r['sent']:6d} {r['ok']:6d} {r['delivered']:6d} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['alerts_per_s']:9.1f}"
        )
    b, o = results[base.name], results[ours.name]
    print(
        f"\nalertbot adds {o['p50_ms'] - b['p50_ms']:+.1f} ms at p50 and "
        f"{o['p99_ms'] - b['p99_ms']:+.1f} ms at p99 (target: < 20 ms at p99); "
        f"throughput ratio {o['alerts_per_s'] / b['alerts_per_s']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
