"""Runbook runs an operator asks for by hand: the CLI on the host, or the HTTP API with its token.

Both are trusted the way docs/operations.md ("Roles and silences") describes — whoever holds the API
token or a shell on the host already holds production — so a run is a dry run unless ``execute``,
and executed at once when asked, audited under the name given. Slack users never run by hand: they
ask, and the configured approvers approve (services/approvals.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from alertbot.errors import AlertbotError, PayloadError
from alertbot.runbooks.audit import RunResult
from alertbot.runbooks.executor import Executor
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.progress import Progress
from alertbot.services.roles import Actor, Forbidden, Source
from alertbot.tasks import TaskSet

T = TypeVar("T")


class TooManyRuns(AlertbotError):
    code = "too_many_runs"
    http_status = 429


class OperatorRuns:
    """The runs operators started through the API, for the whole process: each carried to its end
    even when whoever awaits it goes away (a client that disconnects must not leave a rollback
    half-applied), and through config reloads; at most ``limit`` at once; waited for at shutdown."""

    def __init__(self, limit: int = 8) -> None:
        self._limit = limit
        # A run's AlertbotError is its client's answer; anything else is logged, its client may be gone.
        self._tasks = TaskSet("operator_run_crashed", expected=(AlertbotError,))

    async def detached(self, work: Coroutine[Any, Any, T]) -> T:
        if len(self._tasks) >= self._limit:
            work.close()
            raise TooManyRuns(f"{self._limit} runs started through the API are still going: try again when one ends")
        return await asyncio.shield(self._tasks.start("operator-run", work))

    async def stop(self, grace: float = 30.0) -> None:
        """Let runs in progress finish, up to ``grace`` seconds; then they are interrupted (and say so)."""
        await self._tasks.finish(grace)


class RunService:
    def __init__(self, executor: Executor, runbooks: Mapping[str, Runbook]) -> None:
        self._executor = executor
        self.runbooks = dict(runbooks)

    async def run(
        self,
        actor: Actor,
        name: str,
        params: dict[str, str],
        *,
        execute: bool,
        progress: Progress | None = None,
    ) -> RunResult:
        """Plan runbook ``name`` (audited as a dry run) or, with ``execute``, apply it step by step."""
        _require_operator(actor)
        return await self._executor.run(
            self.runbook(name), params, execute=execute, trigger=actor.audit, progress=progress
        )

    def runbook(self, name: str) -> Runbook:
        """The loaded runbook ``name`` (``PayloadError`` names those there are)."""
        runbook = self.runbooks.get(name)
        if runbook is None:
            raise PayloadError(f"no runbook {name!r} (have: {', '.join(sorted(self.runbooks)) or 'none'})")
        return runbook

    async def undo(self, actor: Actor, run_id: int, *, execute: bool, progress: Progress | None = None) -> RunResult:
        """Plan (or apply) restoring what run ``run_id`` found, guarded against changes made since."""
        _require_operator(actor)
        return await self._executor.undo(run_id, execute=execute, trigger=actor.audit, progress=progress)


def _require_operator(actor: Actor) -> None:
    if actor.source is Source.UI and actor.role != "approver":
        raise Forbidden(f"{actor.audit} may not run or undo runbooks: that needs the approver role in the console")
    if actor.source is Source.SLACK:
        raise Forbidden(":no_entry: in Slack, runbooks run once approved: use `/alertbot runbook NAME ...`")
