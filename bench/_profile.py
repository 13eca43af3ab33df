"""Per-alert breakdown of a py-spy profile of ``alertbot serve`` taken by ``bench/ingest.py --profile DIR``.

Each sampled stack (py-spy's raw, collapsed format) is put in the first stage below whose rule
matches one of its frames. Samples whose leaf is a wait (epoll, the database thread's work queue,
psycopg waiting for PostgreSQL's answer) are set apart: on a loaded machine py-spy counts a thread
that is runnable but not running as active. A stage's share of the other ("busy") samples times the
CPU per alert measured in the same round gives its milliseconds per alert.

    .venv/bin/python bench/_profile.py DIR/sqlite.txt [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import json
from collections.abc import Callable
from pathlib import Path

Rule = Callable[[list[str]], bool]


def has(*needles: str) -> Rule:
    return lambda frames: any(needle in frame for frame in frames for needle in needles)


def in_transaction(rule: Rule) -> Rule:
    return lambda frames: has("Ingest.ingest_all")(frames) and rule(frames)


def in_dispatcher(rule: Rule) -> Rule:
    return lambda frames: has("alertbot/notify/")(frames) and rule(frames)


SQL_DRIVER = has("do_execute", "do_executemany", "psycopg/", "Connection.commit", "_commit_impl")

WAITING = "waiting in epoll / for work (runnable, not running: machine load)"
WAITING_PG = "waiting for PostgreSQL's answers (round trips)"


def waiting(frames: list[str]) -> bool:
    """Leaves where a thread waits: py-spy counts it as active while it is runnable but not on a core."""
    leaf = frames[-1]
    return leaf.startswith(("EpollSelector.select", "_worker (concurrent/futures/thread.py:81)", "Condition.wait"))


def waiting_for_postgres(frames: list[str]) -> bool:
    """psycopg waiting for the server's answer (a round trip; the CPU it costs is PostgreSQL's)."""
    return frames[-1].startswith("Connection.wait (psycopg/")


STAGES: list[tuple[str, Rule]] = [
    (WAITING, waiting),
    (WAITING_PG, waiting_for_postgres),
    ("logging (structlog, logging)", has("structlog/", "observability.py", "logging/__init__.py")),
    ("dispatcher/delivery: SQL driver (execute, commit)", in_dispatcher(SQL_DRIVER)),
    ("dispatcher/delivery: SQLAlchemy", in_dispatcher(has("sqlalchemy/"))),
    ("dispatcher/delivery: rest (claim, send, console, metrics)", has("alertbot/notify/")),
    ("ingest transaction: SQL driver (execute, commit)", in_transaction(SQL_DRIVER)),
    ("ingest transaction: SQLAlchemy (compile, bind, rows)", in_transaction(has("sqlalchemy/"))),
    ("ingest transaction: store row conversion (alertbot/store)", in_transaction(has("alertbot/store/"))),
    ("ingest transaction: stages (alertbot/ingest)", has("Ingest.ingest_all")),
    ("store: transaction begin/commit outside stages", has("alertbot/store/engine.py")),
    ("parse + validation (json, pydantic, domain)", has("pydantic", "alertbot/domain/", "json/")),
    ("group commit / pipeline", has("alertbot/ingest/", "alertbot/pipeline.py")),
    ("HTTP (aiohttp, web handler)", has("aiohttp/", "alertbot/web/")),
    ("asyncio event loop", has("asyncio/")),
    ("threads (executor hand-off)", has("threading.py", "concurrent/futures")),
    ("other", lambda frames: True),
]


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=20, help="also list the N leaf functions with most samples")
    args = parser.parse_args()
    stacks = load(args.profile)
    meta = json.loads(args.profile.with_suffix(".json").read_text())
    total = sum(count for _, count in stacks)
    per_stage: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        per_stage[next(name for name, rule in STAGES if rule(frames))] += count
        leaves[frames[-1]] += count
    cpu = meta["cpu_ms_per_alert"]
    print(f"{args.profile}: {total} samples, {meta['accepted']} alerts, {cpu:.3f} CPU ms/alert\n")
    busy = total - per_stage[WAITING] - per_stage[WAITING_PG]
    print("| stage | % of samples | % of busy samples | ms/alert |\n|---|---|---|---|")
    for name, _ in STAGES:
        if per_stage[name]:
            share = per_stage[name] / total
            if name in (WAITING, WAITING_PG):
                print(f"| {name} | {share * 100:.1f} | - | - |")
            else:
                busy_share = per_stage[name] / busy
                print(f"| {name} | {share * 100:.1f} | {busy_share * 100:.1f} | {busy_share * cpu:.3f} |")
    print(f"\ntop {args.top} leaf frames (self samples):")
    for leaf, count in leaves.most_common(args.top):
        print(f"{count / total * 100:5.1f}%  {leaf}")


if __name__ == "__main__":
    main()
