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
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from alertbot import __version__
from alertbot.cli_support import call, load, run, with_store
from alertbot.errors import AlertbotError, PayloadError
from alertbot.services.roles import Forbidden
from alertbot.store.engine import Store


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

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield the answer's lines as they arrive (a run's steps, then its result).
        The daemon sends a heartbeat line every 10 s, so a minute of silence means it is gone."""
        request = self._request("POST", path, body=body, accept="application/x-ndjson")
        try:
            with _OPENER.open(request, timeout=max(self.timeout, 60.0)) as response:
                for line in response:
                    if line.strip():
                        event = _answer(line, self.url)
                        if not isinstance(event, dict):
                            raise DaemonUnreachable(f"{self.url} did not answer as alertbot's API does")
                        yield event
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _call(
        self, method: str, path: str, *, query: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        request = self._request(method, path, query=query, body=body)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return _answer(response.read() or b"null", self.url)
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        accept: str = "application/json",
    ) -> urllib.request.Request:
        url = self.url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"User-Agent": f"alertbot-cli/{__version__}", "Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(url, data=data, headers=headers, method=method)

    def _unreachable(self, exc: Exception) -> DaemonUnreachable:
        reason = getattr(exc, "reason", exc)
        return DaemonUnreachable(f"cannot reach alertbot at {self.url}: {reason}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is refused, not followed: following would turn a POST into a GET and send the
    API token to wherever the redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _answer(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise DaemonUnreachable(f"{url} did not answer with JSON: is it alertbot's API?") from None


def _api_error(exc: urllib.error.HTTPError) -> AlertbotError:
    """The API's own error message; 4xx is the caller's mistake (exit 2), anything else exit 1."""
    if 300 <= exc.code < 400:
        where = exc.headers.get("Location", "elsewhere")
        return PayloadError(f"alertbot answered {exc.code}: a redirect to {where}, not followed (give that as --url)")
    try:
        message = json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    return answered(exc.code, message)


def answered(status: int, message: str) -> AlertbotError:
    """An error the daemon answered with (as a status, or as a streamed ``error`` line)."""
    if status == 401:
        message += " (give the API token with --token or ALERTBOT_API_TOKEN)"
    if status == 403:  # refused by policy (exit 1, as the local CLI), not a usage mistake
        return Forbidden(f"alertbot answered 403: {message}")
    if status < 500:
        return PayloadError(f"alertbot answered {status}: {message}")
    return DaemonUnreachable(f"alertbot answered {status}: {message}")


def daemon(ctx: typer.Context) -> Daemon | None:
    """The daemon named by the global ``--url`` / ``ALERTBOT_URL``, if any."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Daemon) else None


Rows = list[dict[str, Any]]
ReadRows = Callable[[Store], Coroutine[Any, Any, Rows]]


def listed(ctx: typer.Context, config: Path | None, path: str, local: ReadRows, **query: str) -> Rows:
    """A list command's rows: with ``--url`` the daemon's answer to ``GET path?query``, else ``local``
    read from the store the config names — the same JSON either way."""
    if (remote := daemon(ctx)) is not None:
        rows: Rows = call(remote.get, path, **query)
        return rows
    return run(with_store(load(config), local))
