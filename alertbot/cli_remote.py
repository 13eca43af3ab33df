"""The CLI talking to a running daemon: with ``--url`` (or ``ALERTBOT_URL``) commands go through
alertbot's HTTP API with the API token (``--token`` or ``ALERTBOT_API_TOKEN``) instead of opening
a store, so on Kubernetes with PostgreSQL the CLI needs the daemon's URL, not database credentials,
and every action passes the same policy layer and audit as the API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import typer

from alertbot import __version__
from alertbot.errors import AlertbotError, PayloadError


class DaemonUnreachable(AlertbotError):
    code = "daemon_unreachable"
    exit_code = 1


@dataclass(frozen=True)
class Daemon:
    url: str
    token: str | None
    timeout: float = 15.0

    def get(self, path: str, **query: str) -> Any:
        return self._call("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def _call(
        self, method: str, path: str, *, query: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        url = self.url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"User-Agent": f"alertbot-cli/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnreachable(f"cannot reach alertbot at {self.url}: {reason}") from None


def _api_error(exc: urllib.error.HTTPError) -> AlertbotError:
    """The API's own error message; 4xx is the caller's mistake (exit 2), anything else exit 1."""
    try:
        message = json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    if exc.code == 401:
        message += " (give the API token with --token or ALERTBOT_API_TOKEN)"
    if exc.code < 500:
        return PayloadError(f"alertbot answered {exc.code}: {message}")
    return DaemonUnreachable(f"alertbot answered {exc.code}: {message}")


def daemon(ctx: typer.Context) -> Daemon | None:
    """The daemon named by the global ``--url`` / ``ALERTBOT_URL``, if any."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Daemon) else None
