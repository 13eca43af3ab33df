"""Webhook → PagerDuty latency and sustained throughput through the whole pipeline.

Starts a fake PagerDuty (in this process), then for each target — a bare aiohttp handler that forwards
straight to PagerDuty (the baseline), and `alertbot serve` with durable SQLite storage — sends
Alertmanager webhooks at a fixed rate (open loop) and measures, per alert, the time from sending the
webhook to PagerDuty receiving the trigger. Prints p50/p99 and alerts/s for both, and the difference.

    .venv/bin/python bench/notify.py [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


async def drive(url: str, pd: FakePagerDuty, rate: float, seconds: float, run: str) -> dict[str, Any]:
    total = int(rate * seconds)
    sent: dict[str, float] = {}
    statuses: list[int] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            fingerprint, body = webhook_body(i, run)
            sent[fingerprint] = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                statuses.append(resp.status)

        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline and not all(f in pd.received for f in sent):
            await asyncio.sleep(0.05)
        elapsed = max(pd.received.get(f, start) for f in sent) - start
    latencies = sorted((pd.received[f] - sent[f]) * 1000 for f in sent if f in pd.received)
    return {
        "sent": total,
        "delivered": len(latencies),
        "ok": statuses.count(200),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "alerts_per_s": len(latencies) / elapsed,
    }


async def measure(
    command: list[str],
    pd: FakePagerDuty,
    args: argparse.Namespace,
    *,
    run: str,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start a target on a free port (``{port}`` in its command), drive it, stop it."""
    port = free_port()
    proc = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command], cwd=cwd, env=env, stdout=subprocess.DEVNULL
    )
    try:
        await wait_listening(f"http://127.0.0.1:{port}/probe", proc)
        return await drive(f"http://127.0.0.1:{port}/webhook/alertmanager", pd, args.rate, args.seconds, run)
    finally:
        proc.terminate()
        proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks per second (one alert each)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    pd = FakePagerDuty()
    runner = web.AppRunner(pd.app, access_log=None)
    await runner.setup()
    pd_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", pd_port).start()
    events_url = f"http://127.0.0.1:{pd_port}/v2/enqueue"
    results: dict[str, dict[str, Any]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        baseline = [sys.executable, str(ROOT / "bench/_baseline.py"), "{port}", events_url]
        results["bare aiohttp handler"] = await measure(baseline, pd, args, run="b")

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
        alertbot = [
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
        results["alertbot (SQLite, outbox)"] = await measure(
            alertbot, pd, args, run="a", cwd=tmp, env={**os.environ, "ALERTBOT_PAGERDUTY_ROUTING_KEY": KEY}
        )
    await runner.cleanup()

    print(f"webhook → PagerDuty, {args.rate:g} alerts/s for {args.seconds:g} s, one alert per webhook\n")
    print(f"{'target':28} {'sent':>6} {'200s':>6} {'paged':>6} {'p50 ms':>8} {'p99 ms':>8} {'alerts/s':>9}")
    for name, r in results.items():
        print(
            f"{name:28} {r['sent']:6d} {r['ok']:6d} {r['delivered']:6d} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['alerts_per_s']:9.1f}"
        )
    base, ours = results["bare aiohttp handler"], results["alertbot (SQLite, outbox)"]
    print(
        f"\nalertbot adds {ours['p50_ms'] - base['p50_ms']:+.1f} ms at p50 and "
        f"{ours['p99_ms'] - base['p99_ms']:+.1f} ms at p99 (target: < 20 ms at p99); "
        f"throughput ratio {ours['alerts_per_s'] / base['alerts_per_s']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
