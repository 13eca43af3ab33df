"""Slack's endpoints: slash commands and interactions, their signature verified on the raw body
before anything is parsed; the Slack adapter (slack/) answers them."""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from alertbot.errors import PayloadError, StoreUnavailable
from alertbot.slack.commands import Command, parse_interaction
from alertbot.web.checks import app_state, read_body
from alertbot.web.state import AppState

SLACK_BODY_LIMIT = 64 * 1024


async def _verified_slack_form(request: web.Request, state: AppState) -> dict[str, str]:
    """Verify the signature on the raw body, then (only then) parse the form."""
    body = await read_body(request, SLACK_BODY_LIMIT)
    await state.slack_verifier.verify(
        timestamp=request.headers.get("X-Slack-Request-Timestamp"),
        signature=request.headers.get("X-Slack-Signature"),
        body=body,
        now=state.clock(),
        store=state.store if state.started else None,  # replays refused across replicas (docs/operations.md)
    )
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise PayloadError("body is not valid UTF-8") from None
    return {key: values[0] for key, values in form.items()}


async def slack_commands(request: web.Request) -> web.Response:
    state = app_state(request)
    form = await _verified_slack_form(request, state)
    if state.slack is None:
        raise StoreUnavailable("alertbot is starting")
    return web.json_response(await state.slack.command(Command.of(form)))


async def slack_interactions(request: web.Request) -> web.Response:
    state = app_state(request)
    form = await _verified_slack_form(request, state)
    if state.slack is None:
        raise StoreUnavailable("alertbot is starting")
    try:
        payload = parse_interaction(form.get("payload", ""))
    except ValueError:
        raise PayloadError("payload: not a JSON object") from None
    answer = await state.slack.interaction(payload)
    return web.json_response(answer) if answer is not None else web.Response(status=200)
