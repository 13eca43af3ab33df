"""The web console at /ui/ (docs/console.md): pages.py renders, auth.py says who is looking."""

from __future__ import annotations

from aiohttp import web
from pydantic import SecretStr

from alertbot.web.console.auth import LoginThrottle, Sessions
from alertbot.web.console.pages import (
    HERE,
    SESSIONS,
    THROTTLE,
    decisions_page,
    incident_action,
    incident_page,
    incidents_page,
    login,
    login_page,
    logout,
    page,
    runs_page,
    silence_create,
    silence_expire,
    silences_page,
    undo_page,
    undo_run,
)


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/ui/")


def setup_console(app: web.Application, api_token: SecretStr | None) -> None:
    app[SESSIONS] = Sessions(api_token)
    app[THROTTLE] = LoginThrottle()
    app.router.add_get("/", _to_console)
    app.router.add_get("/ui", _to_console)
    app.router.add_get("/ui/", page(incidents_page))
    app.router.add_get("/ui/incidents/{incident_id}", page(incident_page))
    app.router.add_post("/ui/incidents/{incident_id}/{action}", page(incident_action, post=True))
    app.router.add_get("/ui/silences", page(silences_page))
    app.router.add_post("/ui/silences", page(silence_create, post=True))
    app.router.add_post("/ui/silences/{silence_id}/expire", page(silence_expire, post=True))
    app.router.add_get("/ui/runs", page(runs_page))
    app.router.add_get("/ui/runs/{run_id}/undo", page(undo_page))
    app.router.add_post("/ui/runs/{run_id}/undo", page(undo_run, post=True))
    app.router.add_get("/ui/decisions", page(decisions_page))
    app.router.add_get("/ui/login", login_page)
    app.router.add_post("/ui/login", login)
    app.router.add_post("/ui/logout", page(logout, post=True))
    app.router.add_static("/ui/static/", HERE / "static", append_version=False)
