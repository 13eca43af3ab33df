"""Bad input answers 4xx, never a 500 and never a traceback in the log: deep JSON nesting, integers
past Python's 4,300-digit conversion limit, and non-UTF-8 bytes in the Authorization header."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import Harness, MakeHarness
from tests.helpers import payload_json

FIRING = "am-higherrorrate-nutrition-service-firing.json"


async def _raw_request(h: Harness, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as-is on a fresh socket; the status code and the whole answer."""
    server = h.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"alerts": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "nested"),
        (b'{"version": "4", "x": ' + b"9" * 5_000 + b"}", "number"),
        (
            json.dumps({**payload_json(FIRING), "truncatedAlerts": 0})
            .encode()
            .replace(b": 0}", b": " + b"7" * 5_000 + b"}"),
            "number",
        ),
    ],
    ids=["100k-deep", "5k-deep-inside", "5000-digit-int", "5000-digit-int-in-field"],
)
async def test_hostile_json_is_400(make_harness: MakeHarness, body: bytes, message: str) -> None:
    """Nesting deeper than the limit and integers too long to convert → 400 naming the problem."""
    h = await make_harness({"webhook": {"max_body_bytes": 1024 * 1024}})
    resp = await h.post_payload(body)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_payload" and message in error["message"]
    assert (await h.post_file(FIRING)).status == 200


async def test_deep_nesting_on_the_api_is_400(make_harness: MakeHarness) -> None:
    """The same limits hold for the API's JSON bodies."""
    h = await make_harness()
    resp = await h.client.post(
        "/api/v1/events", data=b"[" * 30_000 + b"]" * 30_000, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


@pytest.mark.parametrize("path", ["/webhook/alertmanager", "/api/v1/incidents"])
async def test_non_utf8_authorization_is_401(make_harness: MakeHarness, path: str) -> None:
    """Bytes that are not UTF-8 in Authorization → 401 JSON (with a token configured), no traceback."""
    h = await make_harness(secret_values={"webhook_token": "s3cret-token", "api_token": "api-token"})
    body = json.dumps(payload_json(FIRING)).encode()
    method = b"POST" if path.startswith("/webhook") else b"GET"
    request = (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer \xff\xfe\xc3\x28s3cret\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    status, answer = await _raw_request(h, request)
    assert status == 401, answer
    assert b'"unauthorized"' in answer
