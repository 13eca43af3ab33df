"""Honest readiness: /readyz is 503 whenever the store cannot commit a webhook (full disk, SQLite file
deleted or moved away, database down), the webhook then answers 503 + Retry-After (Alertmanager
retries), both come back on their own when the cause goes away, and strangers only ever read
``ok`` / ``unavailable``."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from alertbot.settings import parse_config
from alertbot.web.app import create_app
from tests.conftest import ROOT, secrets
from tests.helpers import ConsoleSink, payload_json, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
API_TOKEN = "api-readiness-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[Path], Awaitable[Client]]


@pytest.fixture
async def sqlite_client(aiohttp_client: AiohttpClient) -> AsyncIterator[MakeClient]:
    """The real app on a SQLite file at a given path, readiness cached for the default 1 s."""

    async def make(database: Path) -> Client:
        config = parse_config(
            {"storage": {"url": f"sqlite:///{database}"}, "runbooks": {"dir": str(ROOT / "runbooks")}, "storm": None}
        )
        app = create_app(config, secrets(api_token=API_TOKEN), console_stream=ConsoleSink())
        client: Client = await aiohttp_client(app)
        return client

    yield make


def alert_payload(n: int) -> bytes:
    """A one-alert payload of its own service and group (so nothing de-duplicates or collapses it)."""
    body = copy.deepcopy(payload_json(FIRING))
    alert = body["alerts"][0]
    alert["labels"].pop("canary")
    alert["labels"]["service"] = f"svc-{n}"
    alert["annotations"]["description"] = f"filler {n} " + "x" * 2000
    alert["fingerprint"] = f"{n:016x}"
    body["groupKey"] = f'{{}}:{{service="svc-{n}"}}'
    return json.dumps(body).encode()


async def post(client: Client, n: int) -> ClientResponse:
    return await client.post(
        "/webhook/alertmanager", data=alert_payload(n), headers={"Content-Type": "application/json"}
    )


async def readyz_status(client: Client) -> int:
    status: int = (await client.get("/readyz")).status
    return status


async def test_readyz_answers_strangers_ok_or_unavailable_only(sqlite_client: MakeClient, tmp_path: Path) -> None:
    """/readyz: ``{"status": "ok"}`` when ready; when not, ``{"status": "unavailable"}`` and nothing else
    for an unauthenticated caller, the reason only with the API token."""
    client = await sqlite_client(tmp_path / "db" / "alertbot.db")
    resp = await client.get("/readyz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    (tmp_path / "db" / "alertbot.db").unlink()
    await wait_until(_is(503, client), what="readyz 503")
    resp = await client.get("/readyz")
    assert await resp.json() == {"status": "unavailable"}
    resp = await client.get("/readyz", headers={"Authorization": "Bearer wrong"})
    assert await resp.json() == {"status": "unavailable"}
    detail = await (await client.get("/readyz", headers=AUTH)).json()
    assert detail["status"] == "unavailable" and "deleted" in detail["reason"]


def _is(expected: int, client: Client) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await readyz_status(client) == expected

    return check


async def test_deleted_sqlite_file_is_not_ready_and_refuses_webhooks(sqlite_client: MakeClient, tmp_path: Path) -> None:
    """A SQLite file deleted under the running process: commits would go to a file nobody will open
    again, so the webhook answers 503 + Retry-After instead of 200, and /readyz is 503."""
    database = tmp_path / "db" / "alertbot.db"
    client = await sqlite_client(database)
    assert (await post(client, 1)).status == 200
    database.unlink()
    resp = await post(client, 2)
    assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
    assert (await resp.json())["error"]["code"] == "store_unavailable"
    await wait_until(_is(503, client), what="readyz 503 after the file was deleted")


async def test_sqlite_file_moved_away_and_back_recovers(sqlite_client: MakeClient, tmp_path: Path) -> None:
    """The file renamed away (replaced at its path by another file) → 503 for webhooks and /readyz;
    the original file put back → both recover on their own, and the earlier alert is still there."""
    database = tmp_path / "db" / "alertbot.db"
    client = await sqlite_client(database)
    assert (await post(client, 1)).status == 200
    aside = tmp_path / "db" / "aside.db"
    database.rename(aside)
    database.write_bytes(b"")  # someone "restored" another file at the path
    assert (await post(client, 2)).status == 503
    await wait_until(_is(503, client), what="readyz 503 while another file is at the path")
    aside.replace(database)
    await wait_until(_is(200, client), what="readyz 200 once the file is back")
    assert (await post(client, 3)).status == 200
    listed = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
    assert sorted(i["service"] for i in listed) == ["svc-1", "svc-3"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB file system (tmpfs), mounted for the test: root only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill a disk needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], check=False, capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full (to the last byte); returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


async def test_full_disk_is_not_ready_gives_503_and_recovers(sqlite_client: MakeClient, small_disk: Path) -> None:
    """A full disk (a real tmpfs filled up): /readyz goes 503, webhooks get 503 + Retry-After as soon as
    SQLite cannot commit (never a 200 that was not stored); space freed → /readyz 200 and webhooks
    200 again, with nothing restarted."""
    client = await sqlite_client(small_disk / "alertbot.db")
    assert (await post(client, 0)).status == 200
    assert await readyz_status(client) == 200
    filler = fill(small_disk)
    await wait_until(_is(503, client), what="readyz 503 on a full disk")

    refused = None
    accepted: list[int] = []
    for n in range(1, 400):
        resp = await post(client, n)
        if resp.status == 503:
            refused = resp
            break
        assert resp.status == 200, await resp.text()
        accepted.append(n)
    assert refused is not None, "the disk is full, yet every webhook was accepted"
    assert refused.headers["Retry-After"].isdigit()
    assert (await refused.json())["error"]["code"] == "store_unavailable"
    assert await readyz_status(client) == 503

    filler.unlink()
    await wait_until(_is(200, client), what="readyz 200 once space is free")
    assert (await post(client, 1000)).status == 200
    listed = await (await client.get("/api/v1/incidents?limit=5000", headers=AUTH)).json()
    assert {i["service"] for i in listed} == {f"svc-{n}" for n in [0, *accepted, 1000]}


async def test_read_only_postgres_is_not_ready_then_recovers(
    aiohttp_client: AiohttpClient, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL that answers reads but refuses writes (a standby after a failover, or a database set
    read-only): /readyz 503 with the reason for the token holder, the webhook 503 + Retry-After;
    writable again → ready and accepting, with no restart."""
    server = request.getfixturevalue("postgres_server")
    url = server.new_database()
    name = url.rsplit("/", 1)[1]
    config = parse_config({"storage": {"url": url}, "runbooks": {"dir": str(ROOT / "runbooks")}, "storm": None})
    client: Client = await aiohttp_client(
        create_app(config, secrets(api_token=API_TOKEN), console_stream=ConsoleSink())
    )
    assert (await post(client, 1)).status == 200

    def set_read_only(on: bool) -> None:
        admin = f"host=127.0.0.1 port={server.port} user=alertbot dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = {'on' if on else 'off'}")
            # Existing sessions keep their setting: end them, as a failover would.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    set_read_only(True)
    await wait_until(_is(503, client), what="readyz 503 on a read-only database")
    detail = await (await client.get("/readyz", headers=AUTH)).json()
    assert "read-only" in detail["reason"]
    resp = await post(client, 2)
    while resp.status == 200:  # a pooled connection from before the switch may still commit once
        resp = await post(client, 3)
    assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
    set_read_only(False)
    await wait_until(_is(200, client), what="readyz 200 once writable")
    assert (await post(client, 4)).status == 200
