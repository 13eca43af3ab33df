"""Deep links for a page: the dashboard, the failing traces and the mesh graph of the alerting
service over the alert's window, one click from the page (``context`` in docs/configuration.md).

A link is a template, ``{text, url}``, with placeholders filled from the alert: ``{{ labels.X }}``,
``{{ annotations.X }}``, ``{{ service }}``, ``{{ namespace }}``, and times in milliseconds
(``{{ starts_at_ms }}``, ``{{ ends_at_ms }}``: the end, or now while firing; ``{{ window_start_ms }}``:
``context.lookback`` before the start) or microseconds (``_us``, as Jaeger wants them). In a URL each
value is percent-encoded, so a label can never add a parameter or a path. A link whose placeholder
the alert cannot fill (a missing label) is left out rather than sent broken. Grafana, Jaeger and
Kiali links are built in when their base URL is configured.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from alertbot.domain.link_templates import PLACEHOLDER
from alertbot.notify.base import Notification
from alertbot.settings_sections import ContextConfig, LinkTemplate

# What a page carries at most: PagerDuty shows a handful, a Slack actions block holds 25 elements,
# a Slack button URL at most 3,000 characters.
MAX_LINKS = 10
MAX_URL = 3000
# Jaeger's search for failing spans: tags={"error":"true"}.
JAEGER_ERROR_TAGS = urllib.parse.quote('{"error":"true"}', safe="")


@dataclass(frozen=True)
class ContextLink:
    text: str
    url: str


LinkMaker = Callable[[Notification], list[ContextLink]]


def link_values(n: Notification, now: datetime, lookback: timedelta) -> dict[str, str]:
    """The values of the named placeholders (``service``, ``namespace``, the times) for ``n``."""
    ends = n.ends_at if n.ends_at is not None and n.ends_at > n.starts_at else now
    times = {"starts_at": n.starts_at, "ends_at": ends, "window_start": n.starts_at - lookback}
    values = {"service": n.service, "namespace": n.namespace}
    for name, at in times.items():
        micros = round(at.timestamp() * 1_000_000)
        values[f"{name}_ms"] = str(micros // 1000)
        values[f"{name}_us"] = str(micros)
    return values


def render(template: str, n: Notification, values: Mapping[str, str], *, url: bool) -> str | None:
    """``template`` filled from the alert (percent-encoded when ``url``); None when a value is missing."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        name, key = match.groups()
        source = n.labels if name == "labels" else n.annotations if name == "annotations" else values
        value = source.get(key or name, "")
        if not value:
            missing = True
        return urllib.parse.quote(value, safe="") if url else value

    filled = PLACEHOLDER.sub(fill, template)
    return None if missing else filled


def builtin_templates(context: ContextConfig) -> list[LinkTemplate]:
    """The seed stack's links, for each of Grafana, Jaeger and Kiali whose base URL is set."""
    out = []
    if context.grafana is not None:
        base = context.grafana.url.rstrip("/")
        query = "&".join(f"{k}={v}" for k, v in context.grafana.variables.items())
        url = f"{base}/d/{context.grafana.dashboard}?{query}&from={{{{ window_start_ms }}}}&to={{{{ ends_at_ms }}}}"
        out.append(LinkTemplate(text="Grafana", url=url))
    if context.jaeger is not None:
        base = context.jaeger.url.rstrip("/")
        url = (
            f"{base}/search?service={context.jaeger.service}&tags={JAEGER_ERROR_TAGS}"
            "&start={{ window_start_us }}&end={{ ends_at_us }}&lookback=custom&limit=20"
        )
        out.append(LinkTemplate(text="Failing traces (Jaeger)", url=url))
    if context.kiali is not None:
        base = context.kiali.url.rstrip("/")
        seconds = int(context.lookback.total_seconds())
        graph = f"{base}/console/graph/namespaces/?namespaces={{{{ namespace }}}}"
        url = f"{graph}&graphType=versionedApp&duration={seconds}"
        out.append(LinkTemplate(text="Mesh graph (Kiali)", url=url))
    return out


def context_links(context: ContextConfig, n: Notification, now: datetime) -> list[ContextLink]:
    """The page's deep links: the built-in ones first, then ``context.links``, at most ``MAX_LINKS``."""
    values = link_values(n, now, context.lookback)
    links = []
    for template in [*builtin_templates(context), *context.links]:
        url = render(template.url, n, values, url=True)
        text = render(template.text, n, values, url=False)
        if url is None or text is None or len(url) > MAX_URL:
            continue
        links.append(ContextLink(text[:75], url))  # Slack's button text: at most 75 characters
    return links[:MAX_LINKS]
