"""The failing traces of an alerting service, from Jaeger's HTTP query API — the one its UI and
Grafana's Jaeger data source use: ``GET /api/traces?service=S&tags={"error":"true"}&start=µs&end=µs
&limit=N``, answered ``{"data": [trace, ...], "errors": ...}`` with traces in Jaeger's JSON model
(traceID, spans with operationName, references, startTime and duration in µs, tags, logs; processes
by id). Each trace is summed up as on-call needs it: the root operation, how long it took, and
where the error started — which service, which operation, what it said.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from alertbot.errors import AlertbotError

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")
SEARCHED = 20  # traces asked for; the ones nearest the alert's start are shown


class JaegerUnavailable(AlertbotError):
    code = "jaeger_unavailable"


@dataclass(frozen=True)
class FailingTrace:
    trace_id: str
    operation: str  # the root span's: what the caller asked for
    started_at: datetime
    duration_ms: float
    error: str  # "recipe-service GET /recipes: HTTP 503 (UF)"
    url: str  # the trace in Jaeger's UI


def _tags(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {str(t.get("key")): t.get("value") for t in items if isinstance(t, Mapping)}


def _failed(tags: Mapping[str, Any]) -> bool:
    return tags.get("error") in (True, "true") or str(tags.get("otel.status_code", "")).upper() == "ERROR"


def _what_it_said(span: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
    """An error span's message: its logged message or error, its status description, or its HTTP
    status (with Envoy's response flags, as Istio's spans carry them)."""
    for log in span.get("logs") or []:
        fields = _tags(log.get("fields") if isinstance(log, Mapping) else None)
        for key in ("message", "error.object", "exception.message"):
            if fields.get(key):
                return str(fields[key])
    if tags.get("otel.status_description"):
        return str(tags["otel.status_description"])
    if tags.get("http.status_code"):
        flags = tags.get("response_flags")
        return f"HTTP {tags['http.status_code']}" + (f" ({flags})" if flags and flags != "-" else "")
    return "error"


def summarise(trace: Mapping[str, Any], ui_url: str) -> FailingTrace | None:
    """One trace, as a page shows it; None when it is not a trace in Jaeger's model."""
    trace_id = str(trace.get("traceID", ""))
    spans = [s for s in trace.get("spans") or [] if isinstance(s, Mapping)]
    if not _TRACE_ID.match(trace_id) or not spans:
        return None
    processes = trace.get("processes") if isinstance(trace.get("processes"), Mapping) else {}
    try:
        starts = [int(s["startTime"]) for s in spans]
        ends = [int(s["startTime"]) + int(s.get("duration", 0)) for s in spans]
    except (KeyError, TypeError, ValueError):
        return None
    ids = {s.get("spanID") for s in spans}
    roots = [s for s in spans if not any(r.get("spanID") in ids for r in s.get("references") or [])]
    root = min(roots or spans, key=lambda s: int(s["startTime"]))
    failing = [s for s in spans if _failed(_tags(s.get("tags")))]
    # Where the error started: a failing span none of whose children failed (the caller's spans
    # only pass it on), the earliest if several.
    parents = {r.get("spanID") for s in failing for r in s.get("references") or []}
    origins = sorted((s for s in failing if s.get("spanID") not in parents), key=lambda s: int(s["startTime"]))
    error = "no span marked as an error"
    if origins:
        first = origins[0]
        process = processes.get(first.get("processID"), {}) if isinstance(processes, Mapping) else {}
        service = process.get("serviceName", "") if isinstance(process, Mapping) else ""
        where = " ".join(p for p in (str(service), str(first.get("operationName", ""))) if p)
        error = f"{where}: {_what_it_said(first, _tags(first.get('tags')))}"
    return FailingTrace(
        trace_id=trace_id,
        operation=str(root.get("operationName", "")) or "(unnamed)",
        started_at=datetime.fromtimestamp(min(starts) / 1_000_000, UTC),
        duration_ms=(max(ends) - min(starts)) / 1000,
        error=error[:300],
        url=f"{ui_url.rstrip('/')}/trace/{trace_id}",
    )


class Jaeger:
    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout: float = 10.0) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def failing_traces(
        self, service: str, start: datetime, end: datetime, *, near: datetime, limit: int = 3
    ) -> list[FailingTrace]:
        """Up to ``limit`` traces of ``service`` with an error span between ``start`` and ``end``,
        those that started nearest ``near`` (the alert's start) first."""
        query = {
            "service": service,
            "tags": json.dumps({"error": "true"}, separators=(",", ":")),
            "start": str(round(start.timestamp() * 1_000_000)),
            "end": str(round(end.timestamp() * 1_000_000)),
            "limit": str(SEARCHED),
        }
        url = f"{self._url}/api/traces?{urllib.parse.urlencode(query)}"
        try:
            async with self._session.get(url, timeout=self._timeout) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise JaegerUnavailable(f"Jaeger answered HTTP {resp.status}: {text[:200]}")
                body = json.loads(text)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JaegerUnavailable(f"Jaeger at {self._url} could not be read: {type(exc).__name__}") from None
        traces = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(traces, Sequence):
            raise JaegerUnavailable("Jaeger's answer has no trace list (`data`)")
        found = [t for t in (summarise(trace, self._url) for trace in traces if isinstance(trace, Mapping)) if t]
        found.sort(key=lambda t: abs((t.started_at - near).total_seconds()))
        return found[:limit]
