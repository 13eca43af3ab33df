"""Sustained webhook ingest: how many alerts per second each target accepts, and at what latency.

Closed loop: ``--clients`` concurrent senders post Alertmanager webhooks (one new alert each, each its
own group) as fast as the target answers, for ``--seconds``. All targets run side by side and are
measured in ``--rounds`` interleaved rounds (A, B, C, A, B, C, ...) so that what else the machine does
falls on all of them alike. Each round also reports the CPU the target's server process used per
accepted alert (utime + stime from ``/proc/PID/stat``, read before the round and after the process has
gone quiet, so the sends the round queued count too) — steadier than alerts/s, since the load generator
shares the cores. Targets:

- a bare aiohttp handler that only parses the JSON and answers 200 (the ceiling: no storage at all);
- ``alertbot serve`` on SQLite (the default) and on PostgreSQL — durable: each 200 is sent after the
  alert and its notifications are committed;
- alerta-server (the closest Python peer: its Alertmanager webhook, on PostgreSQL, under gunicorn with
  one worker per core), when ``--alerta VENV`` names a virtualenv with ``alerta-server``,
  ``psycopg2-binary`` and ``gunicorn`` installed.

    .venv/bin/python bench/ingest.py [--seconds 10] [--rounds 3] [--clients 32] [--alerta /path/to/venv]
        [--no-postgres] [--profile DIR] [--baseline DIR]

``--profile DIR`` adds one unmeasured round per alertbot target with py-spy (``pip install py-spy``)
sampling the server process, written as collapsed stacks to ``DIR/sqlite.txt`` / ``DIR/postgresql.txt``
(``bench/_profile.py`` groups them per stage). ``--replicas 1,2,4`` measures instead alertbot on one
PostgreSQL with that many ``alertbot serve`` processes, the senders spread over them. ``--baseline DIR``
adds alertbot from another tree (``git archive main alertbot | tar -x -C DIR``) to the same rounds, for
a before/after under the same load.

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
import collections
import hashlib
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
    alert["fingerprint"] = hashlib.blake2b(f"{run}:{i}".encode(), digest_size=8).hexdigest()  # new every run
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


async def drive(url: str | list[str], *, clients: int, seconds: float, run: str) -> dict[str, Any]:
    """Closed loop for ``seconds``; with several URLs (replicas) sender ``i`` posts to ``urls[i % n]``."""
    urls = [url] if isinstance(url, str) else url
    latencies: list[float] = []
    failures: dict[str, int] = {}
    counter = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        stop = time.perf_counter() + seconds

        async def sender(url: str) -> None:
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
        await asyncio.gather(*(sender(urls[i % len(urls)]) for i in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "accepted": len(latencies),
        "failed": failures,
        "alerts_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def settle(pids: list[int], *, quiet: float = 0.2, limit: float = 5.0) -> None:
    """Wait until the processes stop using CPU (the outbox sends what the round queued), at most ``limit`` s."""
    deadline = time.perf_counter() + limit
    last = sum(cpu_seconds(pid) for pid in pids)
    while time.perf_counter() < deadline:
        await asyncio.sleep(quiet)
        now = sum(cpu_seconds(pid) for pid in pids)
        if now - last < 1.5 / CLOCK_TICKS:
            return
        last = now


class Target:
    """One or more server processes (replicas) measured together."""

    def __init__(
        self,
        name: str,
        commands: list[list[str]],
        path: str,
        *,
        probe: str = "/probe",
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.commands, self.path, self.probe, self.cwd = name, commands, path, probe, cwd
        self.env = {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.urls: list[str] = []
        self.rounds: list[dict[str, Any]] = []

    async def start(self) -> None:
        for command in self.commands:  # one after the other: each migrates / checks the schema at start
            port = free_port()
            log = tempfile.TemporaryFile()  # noqa: SIM115  # closed by stop()
            proc = subprocess.Popen(
                [part.replace("{port}", str(port)) for part in command],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            self.procs.append(proc)
            self.logs.append(log)
            await wait_listening(f"http://127.0.0.1:{port}{self.probe}", proc)
            self.urls.append(f"http://127.0.0.1:{port}{self.path}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait()
        for log in self.logs:
            log.close()

    def log_tail(self) -> str:
        log = self.logs[0]
        log.seek(0)
        return str(log.read()[-2000:].decode(errors="replace"))

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    async def round(self, args: argparse.Namespace, run: str) -> dict[str, Any]:
        """One measured round: alerts/s, latency, and the server processes' CPU per accepted alert."""
        await settle(self.pids)
        cpu_before = sum(cpu_seconds(pid) for pid in self.pids)
        result = await drive(self.urls, clients=args.clients, seconds=args.seconds, run=run)
        await settle(self.pids)  # the CPU spent sending what this round queued belongs to it
        cpu = sum(cpu_seconds(pid) for pid in self.pids) - cpu_before
        result["cpu_ms_per_alert"] = cpu * 1000 / result["accepted"] if result["accepted"] else float("nan")
        result["load"] = os.getloadavg()[0]
        return result


async def profile(target: Target, args: argparse.Namespace, out: Path, run: str) -> None:
    """An extra, unmeasured round with py-spy sampling the (single) server process."""
    py_spy = Path(sys.executable).parent / "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(target.pids[0]),
            "--rate",
            "250",
            "--duration",
            str(int(args.seconds)),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # py-spy attaches
    result = await target.round(args, run)
    await asyncio.get_running_loop().run_in_executor(None, spy.wait)
    print(f"profile of {target.name} -> {out}: {result['accepted']} alerts accepted while sampled", flush=True)
    out.with_suffix(".json").write_text(
        json.dumps({"accepted": result["accepted"], "cpu_ms_per_alert": result["cpu_ms_per_alert"]})
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


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


LOG_LEVEL = ["warning"]  # --log-level


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
        LOG_LEVEL[0],
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
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per target, interleaved")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL target")
    parser.add_argument(
        "--replicas",
        type=lambda text: [int(n) for n in text.split(",")],
        help="e.g. 1,2,4: alertbot on one PostgreSQL with that many serve processes, senders spread over them",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a directory holding another tree's alertbot package (e.g. git archive main alertbot | tar -x -C DIR): "
        "its SQLite and PostgreSQL targets join the rounds",
    )
    parser.add_argument("--profile", type=Path, help="a directory: py-spy raw profiles of an extra round")
    parser.add_argument(
        "--log-level", default="warning", help="alertbot's (serve's default is info: a line per delivery)"
    )
    args = parser.parse_args()
    LOG_LEVEL[0] = args.log_level
    if args.storm:
        await storm(args)
        return
    await interleaved(args)


BARE = "bare aiohttp (parse JSON only)"


async def build_targets(args: argparse.Namespace, tmp: str, pg: PostgresServer | None) -> list[Target]:
    webhook_path = "/webhook/alertmanager"
    if args.replicas:
        if pg is None:
            raise SystemExit("--replicas needs PostgreSQL")
        targets = []
        for n in args.replicas:
            database = pg.new_database()
            commands = [alertbot_command(tmp, f"pg{n}", database) for _ in range(n)]
            targets.append(Target(f"alertbot, PostgreSQL x{n}", commands, webhook_path, cwd=tmp))
        return targets
    bare = [sys.executable, str(ROOT / "bench/_bare_ingest.py"), "{port}"]
    sqlite = alertbot_command(tmp, "sqlite", f"sqlite:///{tmp}/alertbot.db")
    targets = [Target(BARE, [bare], webhook_path), Target("alertbot, SQLite", [sqlite], webhook_path, cwd=tmp)]
    if pg is not None:
        command = alertbot_command(tmp, "pg", pg.new_database())
        targets.append(Target("alertbot, PostgreSQL", [command], webhook_path, cwd=tmp))
    if args.baseline is not None:  # the same targets from another tree, interleaved with these
        env = {"PYTHONPATH": str(args.baseline.resolve())}
        sqlite = alertbot_command(tmp, "base-sqlite", f"sqlite:///{tmp}/baseline.db")
        targets.append(Target("alertbot baseline, SQLite", [sqlite], webhook_path, cwd=tmp, env=env))
        if pg is not None:
            command = alertbot_command(tmp, "base-pg", pg.new_database())
            targets.append(Target("alertbot baseline, PostgreSQL", [command], webhook_path, cwd=tmp, env=env))
    if args.alerta is not None and pg is not None:
        database = pg.new_database().replace("postgresql://", "postgres://")
        env = {"DATABASE_URL": database, "AUTH_REQUIRED": "False", "LOG_LEVEL": "WARNING"}
        gunicorn = [str(args.alerta / "bin/gunicorn"), "-b", "127.0.0.1:{port}", "alerta:create_app()"]
        # Workers starting together on an empty database deadlock creating alerta's schema:
        # one worker creates it first.
        await start_once([*gunicorn, "-w", "1"], "/management/healthcheck", env)
        command = [*gunicorn, "-w", str(os.cpu_count() or 2)]
        alerta = Target(
            "alerta-server 9, PostgreSQL", [command], "/webhooks/prometheus", probe="/management/healthcheck", env=env
        )
        targets.append(alerta)
    return targets


async def run_rounds(targets: list[Target], args: argparse.Namespace) -> None:
    for target in targets:
        await target.start()
    for i, target in enumerate(targets):  # warm-up
        await drive(target.urls, clients=args.clients, seconds=1.0, run=f"w{i}")
    for r in range(args.rounds):  # A, B, C, A, B, C, ...: what else loads the machine falls on all alike
        for i, target in enumerate(targets):
            result = await target.round(args, run=f"{r}t{i}")
            target.rounds.append(result)
            print(
                f"round {r + 1} {target.name}: {result['alerts_per_s']:.1f} alerts/s, "
                f"{result['cpu_ms_per_alert']:.3f} CPU ms/alert, load {result['load']:.2f}",
                flush=True,
            )
            if not result["accepted"]:
                print(f"{target.name} accepted nothing; its log ends:\n{target.log_tail()}")
    if args.profile is not None:
        for i, target in enumerate(targets):
            if target.name.startswith("alertbot") and len(target.procs) == 1:
                slug = target.name.replace("alertbot", "").replace(",", "").strip().replace(" ", "-").lower()
                await profile(target, args, args.profile / f"{slug}.txt", run=f"prof{i}")


def report(targets: list[Target], args: argparse.Namespace) -> None:
    loads = [r["load"] for t in targets for r in t.rounds]
    print(
        f"\nwebhook ingest, {args.clients} concurrent senders, {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s per target, one new alert per webhook; medians over the rounds "
        f"(1-min load average during the rounds: {min(loads):.2f} to {max(loads):.2f})\n"
    )
    print(
        f"{'target':32} {'accepted':>9} {'alerts/s':>9} {'CPU ms/alert':>13} {'p50 ms':>8} {'p99 ms':>8}  "
        "per round: alerts/s | CPU ms/alert"
    )
    summary: dict[str, tuple[float, float]] = {}
    for target in targets:
        rs = target.rounds
        rate, cpu = median([r["alerts_per_s"] for r in rs]), median([r["cpu_ms_per_alert"] for r in rs])
        summary[target.name] = (rate, cpu)
        failures: collections.Counter[str] = collections.Counter()
        for r in rs:
            failures.update(r["failed"])
        print(
            f"{target.name:32} {sum(r['accepted'] for r in rs):9d} {rate:9.1f} {cpu:13.3f} "
            f"{median([r['p50_ms'] for r in rs]):8.1f} {median([r['p99_ms'] for r in rs]):8.1f}  "
            + " ".join(f"{r['alerts_per_s']:.0f}" for r in rs)
            + " | "
            + " ".join(f"{r['cpu_ms_per_alert']:.3f}" for r in rs)
            + (f"  failures {dict(failures)}" if failures else "")
        )
    print()
    if BARE not in summary:
        one = summary[targets[0].name][0]
        for name, (rate, cpu) in summary.items():
            print(f"{name}: {rate / one:.2f}x the first target's alerts/s, {cpu:.3f} CPU ms/alert over all replicas")
        return
    bare_rate, bare_cpu = summary[BARE]
    for name, (rate, cpu) in summary.items():
        if name.startswith("alertbot"):
            line = (
                f"{name}: {rate / bare_rate:.2f}x the bare handler in alerts/s, {bare_cpu / cpu:.2f}x in CPU per "
                f"alert ({cpu / bare_cpu:.1f}x its CPU) (target >= 0.5)"
            )
            alerta = summary.get("alerta-server 9, PostgreSQL")
            if alerta and alerta[0] > 0:
                line += f", {rate / alerta[0]:.1f}x alerta-server (target >= 3)"
            print(line)


async def interleaved(args: argparse.Namespace) -> None:
    pg = PostgresServer() if postgres.available() and not args.no_postgres else None
    if pg is not None:
        pg.start()
    targets: list[Target] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                targets = await build_targets(args, tmp, pg)
                await run_rounds(targets, args)
            finally:
                for target in targets:
                    target.stop()
    finally:
        if pg is not None:
            pg.cleanup()
    report(targets, args)


if __name__ == "__main__":
    asyncio.run(main())
