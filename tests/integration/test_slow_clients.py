"""Slow clients are cut off and never starve real ones: webhook.body_timeout bounds reading a body,
webhook.header_timeout bounds reading a request's headers; while 64 clients stall, a real webhook is
still answered within one timeout. Real sockets against the runner ``alertbot serve`` uses."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from alertbot.settings import parse_config
from alertbot.web.app import app_runner, create_app
from alertbot.web.state import STATE
from tests.conftest import secrets
from tests.helpers import payload_bytes, wait_until

TIMEOUT = 0.5
TOKEN = "s3cret-token"
FIRING = payload_bytes("am-higherrorrate-nutrition-service-firing.json")


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    """alertbot on 127.0.0.1 with 0.5 s body and header timeouts and a webhook token."""
    config = parse_config(
        {
            "storage": {"url": f"sqlite:///{tmp_path}/alertbot.db"},
            "runbooks": {"dir": str(tmp_path)},
            "webhook": {"body_timeout": TIMEOUT, "header_timeout": TIMEOUT},
        }
    )
    app = create_app(config, secrets(webhook_token=TOKEN), console_stream=io.StringIO())
    runner = app_runner(app, config)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await wait_until(lambda: app[STATE].started, what="app started")
    sockets = getattr(site._server, "sockets", None) or []
    try:
        yield sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


def _head(length: int, *, token: str = TOKEN) -> bytes:
    return (
        b"POST /webhook/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n"
    )


async def _stall(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def _answer_or_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection ('' when it just closes)."""
    return await asyncio.wait_for(reader.read(), timeout=10)


async def test_stalled_body_is_cut_off_with_408(port: int) -> None:
    """Headers, half a body, then silence → 408 (or a closed connection) after body_timeout, not never."""
    started = time.monotonic()
    reader, writer = await _stall(port, _head(len(FIRING)) + FIRING[: len(FIRING) // 2])
    answer = await _answer_or_close(reader)
    writer.close()
    elapsed = time.monotonic() - started
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    assert TIMEOUT * 0.8 <= elapsed < TIMEOUT + 2.0


async def test_stalled_headers_are_cut_off(port: int) -> None:
    """Half a request head, then silence → the connection is closed after header_timeout."""
    started = time.monotonic()
    reader, writer = await _stall(port, b"POST /webhook/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    answer = await _answer_or_close(reader)
    writer.close()
    assert time.monotonic() - started < TIMEOUT + 2.0
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


async def test_real_webhook_answered_while_64_clients_stall(port: int) -> None:
    """64 clients stall mid-body (small and large declared bodies, more than there are body slots) and
    8 more mid-headers; a real webhook sent meanwhile gets its 200 within one body timeout."""
    stalled = [await _stall(port, _head(len(FIRING)) + FIRING[:100]) for _ in range(32)]
    big = 512 * 1024
    stalled += [await _stall(port, _head(big) + b"[" * 100_000) for _ in range(32)]
    stalled += [await _stall(port, b"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\n") for _ in range(8)]
    try:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_head(len(FIRING)) + FIRING)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        elapsed = time.monotonic() - started
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
        assert elapsed < TIMEOUT, f"answered after {elapsed:.2f}s"
    finally:
        for _, w in stalled:
            w.close()
