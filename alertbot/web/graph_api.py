"""``GET /api/v1/incidents/{id}/graph.png``: an incident's graph (alertbot/context/graph.py).

The API token opens it, as every API endpoint. A page in PagerDuty links to it as well, and a
browser following that link has no token: the link carries ``sig``, an HMAC of the incident's id
under the API token, which opens that one incident's graph and nothing else. Rotating the API token
invalidates every link handed out before.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from pydantic import SecretStr

from alertbot.context.graph import GraphSubject, graph_title
from alertbot.domain.graph_query import graph_query
from alertbot.errors import NotFound, StoreUnavailable
from alertbot.notify.base import Notification
from alertbot.notify.links import ContextLink
from alertbot.settings import Config, Secrets
from alertbot.store import incidents
from alertbot.web.checks import app_state, path_id, require_bearer

GRAPH_PATH = "/api/v1/incidents/{incident_id}/graph.png"


def graph_signature(secret: SecretStr, incident_id: int) -> str:
    message = f"graph.png:{incident_id}".encode()
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()[:32]


def graph_link(config: Config, secrets: Secrets, n: Notification) -> list[ContextLink]:
    """The page's link to its graph, when alertbot's external URL is known and there is one to draw."""
    base = config.server.external_url
    if base is None or config.prometheus.url is None or graph_query(n.annotations, n.generator_url) is None:
        return []
    url = base + GRAPH_PATH.format(incident_id=n.incident_id)
    if secrets.api_token is not None:
        url += f"?sig={graph_signature(secrets.api_token, n.incident_id)}"
    return [ContextLink("Graph", url)]


async def get_graph(request: web.Request) -> web.Response:
    state = app_state(request)
    incident_id = path_id(request, "incident_id")
    token, sig = state.secrets.api_token, request.query.get("sig")
    signed = (
        token is not None
        and sig is not None
        and hmac.compare_digest(sig.encode("utf-8", "surrogateescape"), graph_signature(token, incident_id).encode())
    )
    if not signed:
        require_bearer(request, token)  # a wrong or missing signature: the API token, as everywhere
    if state.graphs is None:
        raise StoreUnavailable("alertbot is starting")
    record = await state.store.read(incidents.get, incident_id)
    if record is None:
        raise NotFound(f"no incident {incident_id}")
    subject = GraphSubject(
        record.id,
        graph_title(record.alertname, record.service, record.severity),
        record.labels,
        record.annotations,
        record.generator_url,
        record.starts_at,
        record.ends_at if record.status == "resolved" else None,
    )
    graph = await state.graphs.graph(subject)
    return web.Response(
        body=graph.png,
        content_type="image/png",
        headers={
            "Cache-Control": "private, max-age=60",
            "Content-Disposition": f'inline; filename="incident-{incident_id}.png"',
        },
    )
