"""Every error leaves as JSON: ``{"error": {"code": ..., "message": ...}}``; every refused request
(4xx) leaves a trace in the log, rate-limited per client (``RefusalLog``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from alertbot.errors import AlertbotError, RequestTimeout, StoreUnavailable

log = structlog.get_logger("alertbot.web")


REASON = web.ResponseKey("alertbot_reason", str)  # an error response's message, for the refusal log


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)
    response[REASON] = message
    return response


def _slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"


async def _answer_and_close(request: web.Request, response: web.Response) -> None:
    """Send ``response`` and close the connection at once, instead of waiting (aiohttp's lingering
    close) for the rest of a body the client is not sending."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # after what is written has gone out


@dataclass
class _Seen:
    logged_at: datetime
    suppressed: int = 0


class RefusalLog:
    """Logs a refused request (status, reason, client address, method, path; never a header or the
    body, so never a secret) the first time per client and status in each ``every``; the next line
    for that pair carries ``suppressed``, the count not logged in between. A 401 that made
    Alertmanager drop an alert is in the log, and a scanner cannot flood it. Remembers at most
    ``max_clients`` pairs: past that, pairs quiet for ``every`` are forgotten first."""

    def __init__(
        self, clock: Callable[[], datetime], *, every: timedelta = timedelta(minutes=1), max_clients: int = 10_000
    ) -> None:
        self._clock = clock
        self._every = every
        self._max = max_clients
        self._seen: dict[tuple[str, int], _Seen] = {}

    def refused(self, request: web.Request, status: int, reason: str) -> None:
        now = self._clock()
        key = (request.remote or "unknown", status)
        seen = self._seen.get(key)
        if seen is not None and now - seen.logged_at < self._every:
            seen.suppressed += 1
            return
        suppressed = seen.suppressed if seen is not None else 0
        self._remember(key, _Seen(now), now)
        log.warning(
            "request_refused",
            status=status,
            reason=reason,
            remote=key[0],
            method=request.method,
            path=request.path,
            suppressed=suppressed,
        )

    def _remember(self, key: tuple[str, int], seen: _Seen, now: datetime) -> None:
        if key not in self._seen and len(self._seen) >= self._max:
            self._seen = {k: v for k, v in self._seen.items() if now - v.logged_at < self._every}
            if len(self._seen) >= self._max:
                self._seen.clear()
        self._seen[key] = seen


def error_middleware(refusals: RefusalLog) -> Middleware:
    """Turns every error into its JSON answer; notes the refused (4xx) ones in ``refusals``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await _answer_errors(request, handler)
        if 400 <= response.status < 500:
            refusals.refused(request, response.status, _reason(response))
        return response

    return middleware


def _reason(response: web.StreamResponse) -> str:
    return response.get(REASON) or response.reason


async def _answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        log.warning("store_unavailable", path=request.path, error=exc.message)
        return error_response(
            exc.http_status, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_seconds)}
        )
    except AlertbotError as exc:
        response = error_response(exc.http_status, exc.code, exc.message)
        if isinstance(exc, RequestTimeout):
            await _answer_and_close(request, response)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = "payload_too_large" if exc.status == 413 else _slug(exc.reason)
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        log.exception("unhandled_error", path=request.path, method=request.method)
        return error_response(500, "internal", "internal error; see the alertbot log")
