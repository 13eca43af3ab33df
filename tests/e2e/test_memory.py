"""A flood of large webhook posts against a real `alertbot serve` process: 1,000 concurrent posts of
1 MiB each must not exhaust its memory. Oversized ones are refused before a byte is read; the ones
at the limit are read a few dozen at a time (webhook.max_concurrent_bodies), the rest wait unread.
The process's peak resident memory (VmHWM) is read from /proc."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.procs import AlertbotProcess, http
from tests.helpers import payload_json

pytestmark = pytest.mark.e2e
MIB = 1 << 20
POSTS = 1000
# Without the bound, 1,000 bodies of 1 MiB read at once cost over 1 GiB (each is also joined into one
# bytes object); with it, about max_concurrent_bodies of them plus unread socket buffers.
PEAK_GROWTH_LIMIT = 320 * MIB  # measured: ~210 MiB


@pytest.fixture
def alertbot(tmp_path: Path) -> Iterator[AlertbotProcess]:
    proc = AlertbotProcess(tmp_path / "ab", {"storage": {"url": f"sqlite:///{tmp_path}/ab/ab.db"}})
    try:
        yield proc.start()
    finally:
        proc.close()


def peak_rss(proc: AlertbotProcess) -> int:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def padded_payload(size: int) -> bytes:
    """A captured payload padded with JSON whitespace to exactly ``size`` bytes: valid, and 1 MiB."""
    body = json.dumps(payload_json("am-higherrorrate-nutrition-service-firing.json")).encode()
    return body + b" " * (size - len(body))


async def flood(url: str, body: bytes) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=POSTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one() -> None:
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    outcomes[str(resp.status)] += 1
            except (aiohttp.ClientError, ConnectionError) as exc:
                outcomes[type(exc).__name__] += 1  # refused mid-upload: the server closed after its 413

        await asyncio.gather(*(one() for _ in range(POSTS)))
    return outcomes


def test_a_thousand_concurrent_one_mib_posts_stay_within_bounded_memory(alertbot: AlertbotProcess) -> None:
    url = f"{alertbot.url}/webhook/alertmanager"
    before = peak_rss(alertbot)

    at_limit = asyncio.run(flood(url, padded_payload(MIB)))
    assert at_limit == Counter({"200": POSTS}), at_limit
    after_valid = peak_rss(alertbot)

    over = asyncio.run(flood(url, padded_payload(MIB + 1)))
    assert set(over) <= {"413", "ServerDisconnectedError", "ClientOSError"} and over["413"] > 0, over
    after_over = peak_rss(alertbot)

    assert after_over - before < PEAK_GROWTH_LIMIT, (before, after_valid, after_over)
    assert http("GET", f"{alertbot.url}/healthz")[0] == 200
    status, incidents = http("GET", f"{alertbot.url}/api/v1/incidents")
    assert status == 200 and len(incidents) == 1  # 1,000 deliveries of one alert: one incident
