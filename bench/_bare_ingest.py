"""The ceiling for bench/ingest.py: an aiohttp webhook handler that parses the JSON and answers 200 —
no validation, no storage, no notifications."""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web


async def webhook(request: web.Request) -> web.Response:
    payload = json.loads(await request.read())
    return web.json_response({"status": "accepted", "alerts": len(payload.get("alerts", []))})


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhook/alertmanager", webhook)
    app.router.add_post("/probe", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
