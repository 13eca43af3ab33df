"""``alertbot silence add|list|expire``: through the silence service, with the same limits as Slack
and the HTTP API (``silences.max_duration``; ``--force`` for matchers that would match every alert)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp
import typer

from alertbot import __version__
from alertbot.cli_remote import daemon, listed
from alertbot.cli_support import ConfigOpt, JsonOpt, call, fail, flag, load, run, with_store
from alertbot.domain.silence import Silence
from alertbot.errors import AlertbotError, NotFound, PayloadError
from alertbot.notify.slack import make_client as make_slack_client
from alertbot.observability import configure_logging, redactor
from alertbot.services.roles import Actor, Roles, Source
from alertbot.services.silences import SilenceLimits, SilenceService
from alertbot.settings import Config, load_secrets
from alertbot.slack.announce import SilenceAnnouncer
from alertbot.store import silences as silence_repo
from alertbot.store.engine import Store

silence_app = typer.Typer(help="Create, list and expire silences (in the configured store).", no_args_is_help=True)


def _show(silence: dict[str, Any], as_json: bool, *, now: datetime | None = None) -> None:
    """One silence: its JSON (``--json``), or one line for a person."""
    if as_json:
        typer.echo(json.dumps(silence))
        return
    ends = datetime.fromisoformat(silence["ends_at"])
    state = "expired" if now is not None and ends <= now else "until"
    comment = f" — {silence['comment']}" if silence["comment"] else ""
    typer.echo(
        f"{silence['id']}  {' '.join(silence['matchers'])}  {state} {ends.strftime('%Y-%m-%d %H:%M:%S %Z')}"
        f"  by {silence['created_by']}{comment}"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _service(cfg: Config, store: Store, announcer: SilenceAnnouncer) -> SilenceService:
    roles = Roles(responders=cfg.slack.responders, approvers=cfg.slack.runbook_approvers)
    limits = SilenceLimits(max_duration=cfg.silences.max_duration)
    return SilenceService(store, roles=roles, clock=_now, limits=limits, announce=announcer)


@silence_app.command("add")
def silence_add(  # noqa: PLR0917 (typer reads the options from the signature)
    ctx: typer.Context,
    matchers: Annotated[list[str], typer.Argument(help='Matchers: name=value, name!=value, name=~"re", name!~"re".')],
    duration: Annotated[str, typer.Option("--duration", "-d", help="How long, e.g. 2h or 30m.")] = "1h",
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    created_by: Annotated[str | None, typer.Option("--by", help="Who (default: cli:$USER).")] = None,
    force: Annotated[bool, flag("--force", "Allow matchers that would match every alert.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Silence matching alerts for a while (stored; the running daemon sees it at once), announced in
    the critical Slack channel when a bot token is configured. With --url: through the daemon's API."""
    who = created_by or f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"
    if (remote := daemon(ctx)) is not None:
        body = {"matchers": matchers, "duration": duration, "comment": comment, "created_by": who, "force": force}
        _show(call(remote.post, "/api/v1/silences", body), as_json)
        return
    cfg = load(config)
    try:
        secrets = load_secrets(cfg)
    except AlertbotError as exc:
        fail(exc)
    configure_logging("info")  # the audit line goes to stderr; stdout stays one JSON object
    redactor.set_values(secrets.values())

    async def create(store: Store) -> Silence:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10), headers={"User-Agent": f"alertbot/{__version__}"}
        ) as session:
            token = secrets.slack_bot_token
            client = make_slack_client(session, token.get_secret_value(), cfg.slack.api_url) if token else None
            service = _service(cfg, store, SilenceAnnouncer(client, cfg.slack.channels.critical))
            return await service.create(
                Actor(Source.CLI, who), matchers, duration=duration, comment=comment, force=force
            )

    silence = run(with_store(cfg, create))
    _show(dict(silence_repo.silence_json(silence)), as_json)


@silence_app.command("list")
def silence_list(
    ctx: typer.Context,
    include_expired: Annotated[bool, flag("--expired", "Include ended silences.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List silences, newest first."""

    async def fetch(store: Store) -> list[dict[str, Any]]:
        found = await store.read(silence_repo.list_all, include_expired=include_expired, now=_now())
        return [dict(silence_repo.silence_json(s)) for s in found]

    now = _now()
    for silence in listed(ctx, config, "/api/v1/silences", fetch, expired=str(include_expired).lower()):
        _show(silence, as_json, now=now)


@silence_app.command("expire")
def silence_expire(
    ctx: typer.Context, silence_id: Annotated[int, typer.Argument(help="Silence id.")], config: ConfigOpt = None
) -> None:
    """End a silence now."""
    if (remote := daemon(ctx)) is not None:
        call(remote.delete, f"/api/v1/silences/{silence_id}")
        typer.echo(f"silence {silence_id} expired")
        return
    cfg = load(config)

    async def expire(store: Store) -> None:
        try:
            await _service(cfg, store, SilenceAnnouncer(None, "")).expire(Actor(Source.CLI, "cli"), silence_id)
        except NotFound as exc:
            raise PayloadError(exc.message) from None  # a usage error here: exit 2

    run(with_store(cfg, expire))
    typer.echo(f"silence {silence_id} expired")
