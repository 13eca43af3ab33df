"""Every error leaves as JSON: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import re

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from alertbot.errors import AlertbotError, RequestTimeout, StoreUnavailable

log = structlog.get_logger("alertbot.web")


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
