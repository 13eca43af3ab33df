"""``alertbot runbook list|run|undo|history``: dry-run first, ``--execute`` to apply, every run audited."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from alertbot.bootstrap import kube_factory, make_executor
from alertbot.cli_support import ConfigOpt, JsonOpt, fail, flag, load, run, runbooks_of, with_store
from alertbot.domain.matchers import parse_label_args
from alertbot.errors import PayloadError
from alertbot.runbooks.audit import RunResult
from alertbot.runbooks.executor import Executor
from alertbot.settings import Config
from alertbot.store import runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import RunRecord

runbook_app = typer.Typer(help="List, run (dry-run first), undo and audit runbooks.", no_args_is_help=True)


def _executor(cfg: Config, store: Store) -> Executor:
    return make_executor(cfg, store, clock=lambda: datetime.now(UTC), kube=kube_factory(cfg))


def _print_result(result: RunResult) -> None:
    for plan in result.plans:
        for line in plan.lines:
            typer.echo(f"  {plan.index}. {line}")
    typer.echo(f"run {result.run_id}: {result.status} — {result.message}")


def _whoami() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"


@runbook_app.command("list")
def runbook_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every runbook with its params."""
    for runbook in runbooks_of(load(config)).values():
        if as_json:
            typer.echo(json.dumps(runbook.model_dump(mode="json", include={"name", "description", "risk", "params"})))
            continue
        params = []
        for p in runbook.params:
            text = p.name + (f"={p.default}" if p.default else "") + ("" if not p.required else " (required)")
            params.append(text)
        typer.echo(f"{runbook.name} [{runbook.risk}] {runbook.description}")
        typer.echo(f"  params: {', '.join(params) or 'none'}")


@runbook_app.command("run")
def runbook_run(
    name: Annotated[str, typer.Argument(help="Runbook name.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v, repeatable.")] = None,
    execute: Annotated[bool, flag("--execute", "Apply the plan (default: dry run).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Plan a runbook (dry run) and, with --execute, apply it. Exit 0 done, 1 failed, 2 bad input."""
    cfg = load(config)
    runbooks = runbooks_of(cfg)
    if name not in runbooks:
        fail(PayloadError(f"no runbook {name!r} (have: {', '.join(sorted(runbooks)) or 'none'})"))
    try:
        params = parse_label_args(param or [])
    except ValueError as exc:
        fail(PayloadError(str(exc).replace("label", "param")))

    async def go(store: Store) -> RunResult:
        return await _executor(cfg, store).run(runbooks[name], params, execute=execute, trigger=_whoami())

    result = run(with_store(cfg, go))
    _print_result(result)
    raise typer.Exit(0 if result.ok else 1)


@runbook_app.command("undo")
def runbook_undo(
    run_id: Annotated[int, typer.Argument(help="The run to undo.")],
    execute: Annotated[bool, flag("--execute", "Apply the undo (default: dry run).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Restore the state a run found before it changed anything (guarded: fails if changed since)."""
    cfg = load(config)

    async def go(store: Store) -> RunResult:
        return await _executor(cfg, store).undo(run_id, execute=execute, trigger=_whoami())

    result = run(with_store(cfg, go))
    _print_result(result)
    raise typer.Exit(0 if result.ok else 1)


@runbook_app.command("history")
def runbook_history(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """The audit log, newest first."""
    cfg = load(config)

    async def fetch(store: Store) -> list[RunRecord]:
        return await store.read(runbook_runs.history, limit)

    for record in run(with_store(cfg, fetch)):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        k: record.to_json()[k]
                        for k in ("id", "runbook", "params", "trigger", "status", "started_at", "result", "undo_of")
                    }
                )
            )
        else:
            params = " ".join(f"{k}={v}" for k, v in record.params.items())
            typer.echo(
                f"{record.id}  {record.started_at.isoformat()}  {record.status:9}  {record.runbook}  "
                f"{params}  ({record.trigger})"
            )
