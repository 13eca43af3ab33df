"""``alertbot runbook list|run|undo|approve|cancel|history``: dry-run first, ``--execute`` to apply,
each step printed as it starts and ends, every run audited.

Without ``--url`` the CLI works on the store and cluster its config names; with ``--url`` (or
``ALERTBOT_URL``) the daemon does the work through its HTTP API (/api/v1/runs) and streams the steps.
Both go through the policy layer's run and approval services, and print from the same JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer

from alertbot.bootstrap import kube_factory, make_executor, make_services
from alertbot.cli_remote import Daemon, answered, daemon, listed
from alertbot.cli_support import ConfigOpt, JsonOpt, call, fail, flag, load, run, runbooks_of, with_store
from alertbot.domain.matchers import parse_label_args
from alertbot.errors import AlertbotError, PayloadError
from alertbot.observability import configure_logging
from alertbot.runbooks.progress import StepEvent, step_text
from alertbot.services import Services
from alertbot.services.approvals import Verdict
from alertbot.services.roles import Actor, Source
from alertbot.settings import Config
from alertbot.store import runbook_runs
from alertbot.store.engine import Store

runbook_app = typer.Typer(help="List, run (dry-run first), undo, approve and audit runbooks.", no_args_is_help=True)

RunbookArg = Annotated[str, typer.Argument(help="Runbook name.")]
RunIdArg = Annotated[int, typer.Argument(help="The run's id (see `alertbot runbook history`).")]
ExecuteOpt = Annotated[bool, flag("--execute", "Apply the plan (default: dry run).")]
HISTORY_FIELDS = ("id", "runbook", "params", "trigger", "status", "started_at", "result", "undo_of")


def _whoami() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"


def _now() -> datetime:
    return datetime.now(UTC)


class _Steps:
    """Prints a run's steps as they start and end; remembers whether any was printed."""

    def __init__(self) -> None:
        self.shown = False

    def show(self, event: dict[str, Any]) -> None:
        self.shown = True
        typer.echo(step_text(event))

    async def __call__(self, event: StepEvent) -> None:
        self.show(event.to_json())


def _with_services(cfg: Config, action: Callable[[Services], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Run ``action`` with the policy layer on the config's store and cluster, as the daemon builds it.
    Its log lines (the audit: who ran, approved) go to stderr; stdout is the run's own output."""
    runbooks = runbooks_of(cfg)
    configure_logging("info")

    async def go(store: Store) -> dict[str, Any]:
        executor = make_executor(cfg, store, clock=_now, kube=kube_factory(cfg))
        return await action(make_services(cfg, store, executor, runbooks, clock=_now))

    return run(with_store(cfg, go))


def _follow(remote: Daemon, path: str, body: dict[str, Any], steps: _Steps) -> dict[str, Any]:
    """Stream a run from the daemon, printing its steps as they come; its final result."""
    try:
        for event in remote.stream(path, body):
            if event.get("event") == "step":
                steps.show(event)
            elif event.get("event") == "result":
                return event
            elif event.get("event") == "error":
                fail(answered(int(event.get("status", 500)), str(event.get("error", {}).get("message", "failed"))))
    except AlertbotError as exc:
        fail(exc)
    ended = "the answer ended before the run's result: the run may still be going (`alertbot runbook history`)"
    fail(answered(502, ended))


def _finish(result: dict[str, Any], steps: _Steps) -> NoReturn:
    """Print a run's result (its plan too, unless its steps were printed as they ran); exit 0 when
    it went as asked, 1 when it failed or was refused."""
    if not steps.shown:
        for step in result["plan"]:
            for line in step["lines"]:
                typer.echo(f"  {step['index']}. {line}")
    typer.echo(f"run {result['run_id']}: {result['status']} — {result['message']}")
    raise typer.Exit(0 if result["ok"] else 1)


@runbook_app.command("list")
def runbook_list(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every runbook with its params (with --url: the daemon's)."""
    if (remote := daemon(ctx)) is not None:
        found = call(remote.get, "/api/v1/runbooks")
    else:
        fields = {"name", "description", "risk", "params"}
        found = [r.model_dump(mode="json", include=fields) for r in runbooks_of(load(config)).values()]
    for runbook in found:
        if as_json:
            typer.echo(json.dumps(runbook))
            continue
        params = [
            p["name"] + (f"={p['default']}" if p.get("default") else "") + (" (required)" if p["required"] else "")
            for p in runbook["params"]
        ]
        typer.echo(f"{runbook['name']} [{runbook['risk']}] {runbook['description']}")
        typer.echo(f"  params: {', '.join(params) or 'none'}")


@runbook_app.command("run")
def runbook_run(
    ctx: typer.Context,
    name: RunbookArg,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v, repeatable.")] = None,
    execute: ExecuteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Plan a runbook (dry run) and, with --execute, apply it step by step. Exit 0 done, 1 failed,
    2 bad input."""
    try:
        params = parse_label_args(param or [])
    except ValueError as exc:
        fail(PayloadError(str(exc).replace("label", "param")))
    if (remote := daemon(ctx)) is not None:
        body = {"runbook": name, "params": params, "execute": execute, "requested_by": _whoami()}
        _finish(_follow(remote, "/api/v1/runs", body, steps := _Steps()), steps)
    actor, steps = Actor(Source.CLI, _whoami()), _Steps()

    async def go(services: Services) -> dict[str, Any]:
        result = await services.runs.run(actor, name, params, execute=execute, progress=steps)
        return result.to_json()

    _finish(_with_services(load(config), go), steps)


@runbook_app.command("undo")
def runbook_undo(ctx: typer.Context, run_id: RunIdArg, execute: ExecuteOpt = False, config: ConfigOpt = None) -> None:
    """Restore the state a run found before it changed anything (guarded: fails if changed since)."""
    if (remote := daemon(ctx)) is not None:
        body = {"execute": execute, "requested_by": _whoami()}
        _finish(_follow(remote, f"/api/v1/runs/{run_id}/undo", body, steps := _Steps()), steps)
    actor, steps = Actor(Source.CLI, _whoami()), _Steps()

    async def go(services: Services) -> dict[str, Any]:
        result = await services.runs.undo(actor, run_id, execute=execute, progress=steps)
        return result.to_json()

    _finish(_with_services(load(config), go), steps)


@runbook_app.command("approve")
def runbook_approve(ctx: typer.Context, run_id: RunIdArg, config: ConfigOpt = None) -> None:
    """Approve a pending run (asked for in Slack, or by an automation); once it has the approvals its
    risk needs, it runs, step by step. Exit 0 approved (or approval recorded), 1 otherwise."""
    if (remote := daemon(ctx)) is not None:
        _decided(_follow(remote, f"/api/v1/runs/{run_id}/approve", {"by": _whoami()}, steps := _Steps()), steps)
    actor, steps = Actor(Source.CLI, _whoami()), _Steps()

    async def go(services: Services) -> dict[str, Any]:
        outcome = await services.approvals.approve(actor, run_id)
        body = outcome.to_json()
        if outcome.verdict is Verdict.APPROVED:
            typer.echo(f"run {run_id} approved by {', '.join(outcome.approvers)}: running")
            body["result"] = (await services.approvals.execute(outcome.record, steps)).to_json()
        return body

    _decided(_with_services(load(config), go), steps)


def _decided(body: dict[str, Any], steps: _Steps) -> NoReturn:
    run_id, verdict = body["run_id"], body["verdict"]
    if "result" in body:
        _finish(body["result"], steps)
    if verdict == "need_more":
        typer.echo(f"run {run_id}: approval recorded ({len(body['approvers'])} of {body['needed']})")
        raise typer.Exit(0)
    if verdict == "operator_counted":
        typer.echo(
            f"run {run_id} already has an approval from the API or the CLI (they count as one approver); "
            f"it needs {body['needed']}: the other must come from a Slack approver"
        )
    elif verdict == "already":
        typer.echo(f"you already approved run {run_id}; it needs {body['needed']} different approvers")
    elif verdict == "replanned":
        new = body["replaced_by"]
        typer.echo(f"the target changed since run {run_id} was planned: run {new['run_id']} replaces it, to approve:")
        for line in new["plan"]:
            typer.echo(f"  {line}")
    else:
        typer.echo(f"run {run_id} is {body.get('state', verdict)}: nothing to approve")
    raise typer.Exit(1)


@runbook_app.command("cancel")
def runbook_cancel(ctx: typer.Context, run_id: RunIdArg, config: ConfigOpt = None) -> None:
    """Cancel a run that is waiting for approval."""
    if (remote := daemon(ctx)) is not None:
        call(remote.post, f"/api/v1/runs/{run_id}/cancel", {"by": _whoami()})
    else:
        actor = Actor(Source.CLI, _whoami())

        async def go(services: Services) -> dict[str, Any]:
            if await services.approvals.cancel(actor, run_id) is None:
                raise PayloadError(f"run {run_id} is not pending: only a pending run can be cancelled")
            return {}

        _with_services(load(config), go)
    typer.echo(f"run {run_id} cancelled")


@runbook_app.command("history")
def runbook_history(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """The audit log, newest first."""

    async def fetch(store: Store) -> list[dict[str, Any]]:
        return [r.to_json() for r in await store.read(runbook_runs.history, limit)]

    for record in listed(ctx, config, "/api/v1/runs", fetch, limit=str(limit)):
        if as_json:
            typer.echo(json.dumps({k: record[k] for k in HISTORY_FIELDS}))
            continue
        params = " ".join(f"{k}={v}" for k, v in record["params"].items())
        typer.echo(
            f"{record['id']}  {record['started_at']}  {record['status']:9}  {record['runbook']}  "
            f"{params}  ({record['trigger']})"
        )
