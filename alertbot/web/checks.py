"""What every handler checks of a request before it uses it: the bearer token, the content type, the
body (its size and its deadline), an API body validated as a model, and ids in the path.
Raw requests become validated models here; nothing deeper sees dicts."""

from __future__ import annotations

import asyncio
import hmac
import re
from typing import TypeVar

import aiohttp
from aiohttp import web
from pydantic import BaseModel, SecretStr, ValidationError

from alertbot.domain.parse import decode_json, describe_validation_error
from alertbot.errors import (
    NotFound,
    PayloadError,
    PayloadTooLarge,
    RequestTimeout,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from alertbot.services import Services
from alertbot.store.schema import parse_id
from alertbot.web.state import STATE, AppState


def app_state(request: web.Request) -> AppState:
    return request.app[STATE]


def require_bearer(request: web.Request, secret: SecretStr | None) -> None:
    """Constant-time check of ``Authorization: Bearer <secret>``; no secret configured → open."""
    if secret is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = secret.get_secret_value().encode()
    # Header bytes that are not UTF-8 arrive as surrogate escapes: back to those bytes, they never match.
    offered = given.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(offered, expected):
        raise Unauthorized("missing or invalid bearer token")


def require_json(request: web.Request) -> None:
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {ctype or 'none'!r}")


def refuse_declared_oversize(request: web.Request, limit: int) -> None:
    """413 at once for a body declared larger than ``limit``: not a byte of it is read."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")


def body_deadline(request: web.Request) -> float:
    """When the request's body must have arrived: ``webhook.body_timeout`` from now (the handler's start)."""
    timeout = request.app[STATE].config.webhook.body_timeout.total_seconds()
    return asyncio.get_running_loop().time() + timeout


async def read_body(request: web.Request, limit: int, *, deadline: float | None = None) -> bytes:
    """The request body, refused as soon as it is known to exceed ``limit`` bytes, or when it has not
    arrived by ``deadline`` (loop time; default ``webhook.body_timeout`` from now): 408, and the
    connection is closed."""
    refuse_declared_oversize(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline if deadline is not None else body_deadline(request)):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive within webhook.body_timeout") from None
    except (ConnectionError, aiohttp.ClientPayloadError):
        # The client went away mid-body (or sent a broken chunked encoding): nothing to process.
        raise PayloadError("the connection closed before the whole body arrived") from None
    return b"".join(chunks)


M = TypeVar("M", bound=BaseModel)


async def api_request(request: web.Request, model: type[M]) -> M:
    """An API call's body: bearer-checked, JSON, at most 64 KiB, validated as ``model`` (400 says where)."""
    require_bearer(request, app_state(request).secrets.api_token)
    require_json(request)
    body = decode_json(await read_body(request, 64 * 1024))
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from None


def query_limit(request: web.Request, *, default: int, maximum: int) -> int:
    """The ``limit`` query parameter: how many rows a list returns (400 unless 1..``maximum``)."""
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        raise PayloadError("limit: must be an integer") from None
    if not 1 <= limit <= maximum:
        raise PayloadError(f"limit: must be between 1 and {maximum}")
    return limit


def services_of(state: AppState) -> Services:
    """The policy layer (503 while alertbot is starting)."""
    if state.services is None:
        raise StoreUnavailable("alertbot is starting")
    return state.services


def path_id(request: web.Request, name: str) -> int:
    """The row id in the path's ``name`` part; 404 when it cannot be one."""
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise NotFound(f"no {name.removesuffix('_id')} {raw!r}")
    return value


# Actor prefixes alertbot writes itself (an alert's automation, a Slack user, PagerDuty): a name given
# through the API may not pose as one — `alert:ID` would tie a run to that incident.
_RESERVED = ("alert:", "slack:", "pagerduty:")
# A Slack user, user-group or bot ID: an API name shaped like one would show as that person in Slack.
_SLACK_ID = re.compile(r"^[UWSB][A-Z0-9]{6,}$")


def operator_name(value: str) -> str:
    """A name given through the API for the audit trail (``by``, ``requested_by``)."""
    if value.lower().startswith(_RESERVED) or _SLACK_ID.match(value) or any(ord(c) < 32 for c in value):
        raise ValueError(
            f"must be a plain name such as cli:alice — not a Slack ID, not starting with {' or '.join(_RESERVED)}"
        )
    return value
