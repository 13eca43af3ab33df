"""List and watch Kubernetes collections over HTTP (aiohttp), with the credentials the official
client's configuration holds (kubeconfig or in-cluster service account, token refresh included).

The official client is synchronous: a watch would pin a worker thread for as long as it runs and
could not be cancelled at shutdown. These two calls are all the watch needs, so they are made
directly: ``list`` → (items, resourceVersion); ``watch`` → the stream of (type, object) events.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import TypedDict, cast

import aiohttp
from kubernetes import client as k8s

from alertbot.domain.jsontypes import KubeObject
from alertbot.errors import AlertbotError

# One entry of the client configuration's ``auth_settings()`` ("in": header or query).
_AuthSetting = TypedDict("_AuthSetting", {"in": str, "type": str, "key": str, "value": str}, total=False)


class KubeApiError(AlertbotError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Gone(KubeApiError):
    """410: the resourceVersion asked for has been compacted away; list again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 410)


class KubeApi:
    def __init__(self, configuration: k8s.Configuration) -> None:
        self._config = configuration
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        cfg = self._config
        if not cfg.verify_ssl:
            return False
        context = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        )
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        return context

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        settings = cast(dict[str, _AuthSetting], self._config.auth_settings())  # refreshes an expiring token
        for auth in settings.values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        return headers

    def _url(self, path: str) -> str:
        return str(self._config.host).rstrip("/") + path

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl()))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def list(self, path: str) -> tuple[list[KubeObject], str]:
        session = await self._open()
        async with session.get(
            self._url(path), headers=self._headers(), timeout=aiohttp.ClientTimeout(total=60)
        ) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise _error(path, resp.status, body)
        data = json.loads(body)
        return list(data.get("items") or []), str(data.get("metadata", {}).get("resourceVersion", ""))

    async def watch(
        self, path: str, resource_version: str, *, server_timeout: float
    ) -> AsyncIterator[tuple[str, KubeObject]]:
        """Events after ``resource_version`` until the server ends the stream (``server_timeout``
        seconds, or sooner); a stream silent for longer than that is treated as dropped."""
        session = await self._open()
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(int(server_timeout), 1)),
        }
        async with session.get(
            self._url(path),
            params=params,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=server_timeout + 30),
        ) as resp:
            if resp.status != 200:
                raise _error(path, resp.status, await resp.text())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = str(event.get("type", "")), event.get("object") or {}
                if kind == "ERROR":
                    raise _error(path, int(obj.get("code") or 500), json.dumps(obj))
                yield kind, obj


def _error(path: str, status: int, body: str) -> KubeApiError:
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body[:200]
    if status == 410:
        return Gone(f"{path}: {message or 'resource version expired'}")
    if status == 403:
        return KubeApiError(
            f"{path}: forbidden — the service account needs RBAC permission to list and watch it ({message})", status
        )
    return KubeApiError(f"{path}: Kubernetes API answered {status}: {message}", status)
