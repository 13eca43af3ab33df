"""Steps that check and pace a run rather than change the cluster: ``prometheus.check`` (poll a query
until it meets an expectation), ``wait`` and ``notify``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from alertbot.domain.plans import CheckDetail, NotifyDetail, WaitDetail
from alertbot.errors import PrometheusError, RunbookError
from alertbot.runbooks.model import Notify, PrometheusCheck, Wait
from alertbot.runbooks.steps import StepContext, StepPlan, log

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _expectation(text: str) -> tuple[Callable[[float, float], bool], float]:
    text = text.strip()
    for symbol in ("<=", ">=", "==", "!=", "<", ">"):
        if text.startswith(symbol):
            return _OPS[symbol], float(text[len(symbol) :])
    raise RunbookError(f"invalid expectation {text!r}")


class PrometheusCheckStep:
    """``prometheus.check``: poll until the query meets the expectation; a miss warns or fails."""

    async def plan(self, index: int, step: PrometheusCheck, ctx: StepContext) -> StepPlan:
        if step.skip_unless is not None and not step.skip_unless.strip():
            return StepPlan(index, step.type, "", ["check skipped (its skip_unless value is empty)"])
        if ctx.prometheus is None:
            return StepPlan(index, step.type, "", ["check skipped (no prometheus.url configured)"])
        line = f"check: {step.query} {step.expect.strip()} within {step.timeout.total_seconds():g}s"
        return StepPlan(index, step.type, "", [line], {"check": step.model_dump(mode="json")})

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        if dry_run or reverse or "check" not in plan.detail or ctx.prometheus is None:
            return None
        step = PrometheusCheck.model_validate(cast(CheckDetail, plan.detail)["check"])
        op, bound = _expectation(step.expect)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + step.timeout.total_seconds()
        while True:
            try:
                value = await ctx.prometheus.value(step.query)
            except PrometheusError as exc:
                raise RunbookError(exc.message) from None
            if value is not None and op(value, bound):
                return None
            if loop.time() + step.interval.total_seconds() > deadline:
                break
            await asyncio.sleep(step.interval.total_seconds())
        seen = "no data" if value is None else f"{value:g}"
        miss = (
            f"still failing: {step.query} is {seen}, expected {step.expect.strip()} after "
            f"{step.timeout.total_seconds():g}s"
        )
        if step.on_fail == "fail":
            raise RunbookError(miss)
        return miss


class WaitStep:
    async def plan(self, index: int, step: Wait, ctx: StepContext) -> StepPlan:
        seconds = step.duration.total_seconds()
        return StepPlan(index, step.type, "", [f"wait {seconds:g}s"], {"seconds": seconds})

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        if not dry_run and not reverse:
            await asyncio.sleep(min(float(cast(WaitDetail, plan.detail)["seconds"]), ctx.max_wait))
        return None


class NotifyStep:
    async def plan(self, index: int, step: Notify, ctx: StepContext) -> StepPlan:
        return StepPlan(index, step.type, "", [f"notify: {step.message}"], {"message": step.message})

    async def apply(self, plan: StepPlan, ctx: StepContext, *, dry_run: bool, reverse: bool) -> str | None:
        if not dry_run and not reverse:
            log.warning("runbook_notify", message=cast(NotifyDetail, plan.detail)["message"])
        return None
