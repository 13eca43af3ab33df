"""The console's pages (docs/console.md): what is firing, one incident's story, runbook runs and their
undo, silences, shadow decisions, and a health strip on every page.

Server-rendered (Jinja2, autoescaped) from the same store and services the API and Slack use: an
action here goes through the policy layer with the signed-in identity as its actor, so roles, limits
and the audit log are the same as everywhere else. A page refreshes its list in place
(static/console.js fetches ``?partial=1`` every ``ui.refresh``), keeping the filters in the address.
"""

from __future__ import annotations

import asyncio
import hmac
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from alertbot import __version__
from alertbot.domain.matchers import Matcher
from alertbot.domain.parse import format_duration
from alertbot.domain.passwords import hash_password, verify
from alertbot.domain.silence import Silence
from alertbot.errors import AlertbotError, NotFound, PayloadError, PayloadTooLarge, UnsupportedMediaType
from alertbot.ingest.stages import recent_changes
from alertbot.services.roles import Action
from alertbot.store import change_events, decisions, figures, incidents, outbox, runbook_runs
from alertbot.store.change_events import ChangeEvent
from alertbot.store.incidents import IncidentRecord
from alertbot.timeline import incident_timeline
from alertbot.web.checks import app_state, path_id, services_of
from alertbot.web.console.auth import (
    ConsoleForbidden,
    LoginThrottle,
    Role,
    Sessions,
    Viewer,
    password_bind,
    same_origin,
    set_session,
    viewer_of,
)
from alertbot.web.state import AppState

HERE = Path(__file__).parent
ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
HEADERS = {
    # Everything the console loads is its own: no inline script, no CDN, no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SESSIONS = web.AppKey("console_sessions", Sessions)
THROTTLE = web.AppKey("console_login_throttle", LoginThrottle)
MAX_FORM = 16 * 1024
MAX_MATCHERS, MAX_MATCHER_VALUE = 5, 100  # a console search
LISTED = 1000  # incidents read for a list (newest first)
CORRELATED = 200  # firing incidents of a list shown with the change they followed

Page = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "—"
    seconds = max((now - value).total_seconds(), 0)
    return "just now" if seconds < 60 else format_duration(timedelta(seconds=int(seconds // 60) * 60)) + " ago"


def _at(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


ENV.filters["at"] = _at


def _render(
    request: web.Request, viewer: Viewer | None, template: str, *, status: int = 200, **values: Any
) -> web.Response:
    state = app_state(request)
    sessions = request.app[SESSIONS]
    body = ENV.get_template(template).render(
        viewer=viewer,
        csrf=sessions.csrf(viewer) if viewer is not None and viewer.signed_in else "",
        refresh_ms=int(state.config.ui.refresh.total_seconds() * 1000),
        version=__version__,
        mode=state.config.mode,
        now=state.clock(),
        ago=lambda v: _ago(v, state.clock()),
        **values,
    )
    return web.Response(text=body, content_type="text/html", status=status, headers=HEADERS)


def page(handler: Page, *, post: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A console handler: the viewer found (or sent to sign in), a form checked for its origin and
    CSRF token, and an error shown as a page with its status — never a stack trace."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = app_state(request)
        viewer: Viewer | None = None
        try:
            viewer = viewer_of(
                request, state.config.ui, request.app[SESSIONS], token_configured=state.secrets.api_token is not None
            )
            if viewer is None:
                raise web.HTTPSeeOther(f"/ui/login?next={request.path_qs if not post else '/ui/'}")
            if post:
                await _check_form(request, viewer)
            return await handler(request, viewer)
        except AlertbotError as exc:
            return _render(request, viewer, "error.html", status=exc.http_status, message=exc.message)

    return wrapped


async def _check_form(request: web.Request, viewer: Viewer) -> None:
    if not viewer.signed_in:
        raise ConsoleForbidden("the console is read-only here: set ALERTBOT_API_TOKEN and sign in to act")
    if not same_origin(request):
        raise ConsoleForbidden("a form from another site: refused")
    form = await _form(request)
    if not request.app[SESSIONS].check_csrf(viewer, str(form.get("csrf", ""))):
        raise ConsoleForbidden("the form's security token is missing or stale: reload the page and try again")


async def _form(request: web.Request) -> dict[str, str]:
    """A console form: URL-encoded, at most ``MAX_FORM`` bytes; anything else is a 4xx, never a 500."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("a console form is application/x-www-form-urlencoded")
    if request.content_length is None or request.content_length > MAX_FORM:
        raise PayloadTooLarge(f"a console form has a Content-Length of at most {MAX_FORM} bytes")
    try:
        data = await request.post()
    except (ValueError, LookupError):  # a bad charset, undecodable bytes
        raise PayloadError("malformed form") from None
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _require(viewer: Viewer, role: Role) -> None:
    if not viewer.may(role):
        raise ConsoleForbidden(f"{viewer.identity} may not do this: it needs the {role} role (ui.users, ui.proxy)")


# ---- incidents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    severity: str
    service: str
    status: str  # open | firing | acknowledged | resolved | all
    q: str
    matchers: tuple[Matcher, ...]

    @classmethod
    def of(cls, request: web.Request) -> Filters:
        query = request.query
        severity = query.get("severity", "")
        status = query.get("status", "open")
        if severity not in ("", "critical", "warning", "info"):
            raise PayloadError(f"severity: critical, warning or info, not {severity!r}")
        if status not in ("open", "firing", "acknowledged", "resolved", "all"):
            raise PayloadError(f"status: open, firing, acknowledged, resolved or all, not {status!r}")
        q = query.get("q", "").strip()[:500]
        try:
            matchers = tuple(Matcher.parse(part) for part in shlex.split(q))
        except ValueError as exc:
            raise PayloadError(f'search: {exc} (e.g. service="checkout" severity=~"crit.*")') from None
        # Bounded: a search runs over every listed incident's labels on each refresh.
        if len(matchers) > MAX_MATCHERS or any(len(m.value) > MAX_MATCHER_VALUE for m in matchers):
            raise PayloadError(
                f"search: at most {MAX_MATCHERS} matchers of at most {MAX_MATCHER_VALUE} characters each"
            )
        return cls(severity, query.get("service", "")[:253], status, q, matchers)

    def keeps(self, i: IncidentRecord) -> bool:
        labels = {**i.labels, "severity": i.severity.value}
        status_ok = {
            "open": i.status == "firing",
            "firing": i.status == "firing" and not i.acked_by,
            "acknowledged": i.status == "firing" and bool(i.acked_by),
            "resolved": i.status == "resolved",
            "all": True,
        }[self.status]
        return (
            status_ok
            and (not self.severity or i.severity.value == self.severity)
            and (not self.service or i.service == self.service)
            and all(m.matches(labels) for m in self.matchers)
        )


def _groups(found: list[IncidentRecord]) -> list[tuple[str, list[IncidentRecord]]]:
    """Open incidents by service, the most severe service first; unacknowledged before acknowledged."""
    by_service: dict[str, list[IncidentRecord]] = {}
    for i in found:
        by_service.setdefault(i.service or "(no service)", []).append(i)
    for items in by_service.values():
        items.sort(key=lambda i: (i.status != "firing", bool(i.acked_by), SEVERITY_ORDER[i.severity.value], -i.id))
    return sorted(by_service.items(), key=lambda kv: (SEVERITY_ORDER[kv[1][0].severity.value], kv[0]))


async def incidents_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    filters = Filters.of(request)
    wanted = {"resolved": "resolved", "all": None}.get(filters.status, "firing")
    records = await state.store.read(incidents.list_incidents, status=wanted, limit=LISTED)
    found = await asyncio.to_thread(lambda: [i for i in records if filters.keeps(i)])
    services = sorted({i.service for i in records if i.service})
    silenced = await _silenced(state, [i for i in found if i.status == "firing"])
    changed = await _changes(state, [i for i in found if i.status == "firing"][:CORRELATED])
    template = "incidents_list.html" if request.query.get("partial") == "1" else "incidents.html"
    return _render(
        request,
        viewer,
        template,
        groups=_groups(found),
        shown=len(found),
        silenced=silenced,
        changed=changed,
        filters=filters,
        services=services,
        health=await _health(state),
    )


async def incident_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    incident_id = path_id(request, "incident_id")
    record = await state.store.read(incidents.get, incident_id)
    if record is None:
        raise NotFound(f"no incident {incident_id}")
    now = state.clock()
    entries = await state.store.read(
        incident_timeline, incident_id, lookback=state.config.correlation.lookback, now=now
    )
    deliveries = await state.store.read(outbox.for_incident, record.chain_id)
    links = [
        (text, url)
        for text, url in (
            ("Runbook", record.annotations.get("runbook_url", "")),
            ("Source", record.generator_url),
            ("Dashboard", record.annotations.get("dashboard_url", "")),
        )
        if url.startswith(("http://", "https://"))
    ]
    return _render(
        request,
        viewer,
        "incident.html",
        silenced=await _silenced(state, [record] if record.status == "firing" else []),
        incident=record,
        timeline=entries or [],
        deliveries=deliveries,
        links=links,
        health=await _health(state),
    )


async def incident_action(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Ack, resolve, or silence for an hour, as the signed-in identity."""
    state = app_state(request)
    incident_id = path_id(request, "incident_id")
    what = request.match_info["action"]
    services = services_of(state)
    if what == "silence":  # the alert's own labels as exact matchers (never re-parsed text)
        await services.silences.for_incident(viewer.actor, incident_id, timedelta(hours=1))
    elif what in ("ack", "resolve"):
        action = Action.ACK if what == "ack" else Action.RESOLVE
        outcome = await services.incidents.act(viewer.actor, action, incident_id)
        if outcome.incident is None and outcome.state == "missing":
            raise NotFound(f"no incident {incident_id}")
    else:
        raise NotFound(f"no action {what!r}")
    raise web.HTTPSeeOther(f"/ui/incidents/{incident_id}")


async def _changes(state: AppState, firing: list[IncidentRecord]) -> dict[int, str]:
    """The change each firing incident started shortly after, as its Slack page says it
    ("started 3m after nutrition-service 1.4.3 → 10% canary"), by incident."""
    if not firing:
        return {}
    lookback = state.config.correlation.lookback
    since = min(i.starts_at for i in firing) - lookback
    events = await state.store.read(change_events.recent, service=None, namespace=None, since=since, limit=2000)
    by_service: dict[str, list[ChangeEvent]] = {}
    for event in events:
        by_service.setdefault(event.service, []).append(event)
    found = {}
    for i in firing:
        correlated = recent_changes(i, lambda service: by_service.get(service, []), lookback)
        if correlated:
            found[i.id] = correlated[0].text
    return found


async def _silenced(state: AppState, firing: list[IncidentRecord]) -> dict[int, Silence]:
    """The active silence that mutes each firing incident now (a silence made after it paged mutes
    its next notification: the page shows it as silenced already)."""
    if not firing:
        return {}
    now = state.clock()
    active = await services_of(state).silences.list(include_expired=False)
    found = {}
    for i in firing:
        labels = {**i.labels, "severity": i.severity.value}
        muting = next((s for s in active if s.silences(labels, now)), None)
        if muting is not None:
            found[i.id] = muting
    return found


# ---- silences, runs, decisions ----------------------------------------------------------------


async def silences_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    found = await services_of(state).silences.list(include_expired=True)
    now = state.clock()
    active = [s for s in found if s.ends_at > now]
    expired = [s for s in found if s.ends_at <= now][:100]
    return _render(request, viewer, "silences.html", active=active, expired=expired, health=await _health(state))


async def silence_create(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    form = await _form(request)
    try:
        matchers = shlex.split(form.get("matchers", ""))
    except ValueError as exc:
        raise PayloadError(f"matchers: {exc}") from None
    await services_of(state).silences.create(
        viewer.actor,
        matchers,
        duration=form.get("duration", "").strip(),
        comment=form.get("comment", "")[:2000],
        force=form.get("force") == "on",
    )
    raise web.HTTPSeeOther("/ui/silences")


async def silence_expire(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    await services_of(state).silences.expire(viewer.actor, path_id(request, "silence_id"))
    raise web.HTTPSeeOther("/ui/silences")


async def runs_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    runs = await state.store.read(runbook_runs.history, 100)
    return _render(request, viewer, "runs.html", runs=runs, health=await _health(state))


async def undo_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The confirm step: what undoing the run would change, planned against the cluster now."""
    state = app_state(request)
    _require(viewer, "approver")
    run = await _applied_run(state, path_id(request, "run_id"))
    plan = await services_of(state).runs.undo(viewer.actor, run.id, execute=False)
    return _render(request, viewer, "undo.html", run=run, plan=plan, health=await _health(state))


async def undo_run(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    _require(viewer, "approver")
    run = await _applied_run(state, path_id(request, "run_id"))
    result = await state.operator_runs.detached(services_of(state).runs.undo(viewer.actor, run.id, execute=True))
    raise web.HTTPSeeOther(f"/ui/runs#run-{result.run_id}")


async def _applied_run(state: AppState, run_id: int) -> runbook_runs.RunRecord:
    run = await state.store.read(runbook_runs.get, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    if not run.applied:
        raise PayloadError(f"run {run.id} ({run.status}) changed nothing: nothing to undo")
    return run


async def decisions_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = app_state(request)
    found = await state.store.read(decisions.recent, 200)
    return _render(request, viewer, "decisions.html", decisions=found, health=await _health(state))


# ---- health, sign-in --------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    ready: str | None  # why not, or None when ready
    backlog: dict[str, int]  # pending rows' age in seconds, per channel
    pending: int
    watchdog: datetime | None
    firing: dict[str, int]


async def _health(state: AppState) -> Health:
    readiness = state.readiness
    reason = "starting" if readiness is None or not state.started else await readiness.check()
    heartbeat = state.config.heartbeat
    try:
        found = await state.store.read(figures.read, heartbeat.alertname if heartbeat is not None else None)
    except AlertbotError as exc:
        return Health(reason or exc.message, {}, 0, None, {})
    now = state.clock()
    backlog = {channel: int((now - since).total_seconds()) for channel, since in found.oldest_pending.items()}
    return Health(reason, backlog, found.pending, found.watchdog_last_seen, found.firing)


async def login_page(request: web.Request) -> web.StreamResponse:
    state = app_state(request)
    if state.secrets.api_token is None or state.config.ui.auth == "proxy":
        raise web.HTTPSeeOther("/ui/")
    return _render(
        request,
        None,
        "login.html",
        error="",
        next=_next(request.query.get("next", "")),
        users=bool(state.config.ui.users),
    )


async def login(request: web.Request) -> web.StreamResponse:
    state = app_state(request)
    token = state.secrets.api_token
    if token is None or state.config.ui.auth == "proxy":
        raise web.HTTPSeeOther("/ui/")
    remote = request.remote or "unknown"
    throttle = request.app[THROTTLE]
    now = time.time()
    form = await _form(request)
    target = _next(form.get("next", ""))
    keys = [f"address:{remote}", f"name:{form.get('name', '').strip()[:64]}"]
    if throttle.blocked(keys, now):
        return _render(
            request,
            None,
            "login.html",
            status=429,
            error="Too many failed attempts: wait a minute.",
            next=target,
            users=bool(state.config.ui.users),
        )
    if not same_origin(request):
        return _render(
            request,
            None,
            "login.html",
            status=403,
            error="A sign-in from another site: refused.",
            next=target,
            users=bool(state.config.ui.users),
        )
    identity, role = await _check_login(state, form)
    if identity is None:
        throttle.failed(keys, now)
        return _render(
            request,
            None,
            "login.html",
            status=401,
            error="Wrong name, password or token.",
            next=target,
            users=bool(state.config.ui.users),
        )
    ttl = state.config.ui.session_ttl.total_seconds()
    response = web.HTTPSeeOther(target)
    bind = password_bind(state.config.ui, identity)
    set_session(request, response, request.app[SESSIONS].issue(identity, role, ttl, now, bind=bind), ttl)
    raise response


async def _check_login(state: AppState, form: dict[str, str]) -> tuple[str | None, Role]:
    name = form.get("name", "").strip()[:64]
    secret = form.get("secret", "")[:1024]
    token = state.secrets.api_token
    assert token is not None
    user = next((u for u in state.config.ui.users if u.name == name), None)
    # The same scrypt work whether or not the name is a user's (no telling names by time), in a
    # worker thread and two at a time (a login flood does not stall alerts).
    async with state.console_hashing:
        matched = await asyncio.to_thread(verify, secret, user.password_hash if user is not None else DECOY_HASH)
    if user is not None:
        return (f"ui:{user.name}", user.role) if matched else (None, "viewer")
    if name and hmac.compare_digest(secret.encode(), token.get_secret_value().encode()):
        # The API token's holder may do what the API may; known by the name they gave.
        return f"ui:{_plain(name)} (token)", "approver"
    return None, "viewer"


DECOY_HASH = hash_password("not a password anyone has", salt=b"alertbot-decoy-salt")


def _plain(name: str) -> str:
    return "".join(c for c in name if c.isalnum() or c in "._@-")[:64] or "someone"


def _next(target: str) -> str:
    """Only a console path: never another site (an open redirect)."""
    return target if target.startswith("/ui/") and not target.startswith("/ui//") and "\\" not in target else "/ui/"


async def logout(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie("alertbot_session", path="/ui/")
    raise response
