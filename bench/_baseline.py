"""The baseline for bench/notify.py: a bare aiohttp webhook handler that parses the JSON and forwards
each alert to PagerDuty at once — no storage, no classification, no routing, no outbox."""

from __future__ import annotations

import json
import sys

import aiohttp
from aiohttp import web


async def main(port: int, events_url: str) -> None:
    session = aiohttp.ClientSession()

    async def webhook(request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        for alert in payload["alerts"]:
            event = {
                "routing_key": "R0UT1NGKEYbench000000000000000001",
                "event_action": "trigger",
                "dedup_key": alert["fingerprint"],
                "payload": {
                    "summary": alert["labels"]["alertname"],
                    "source": "bench",
                    "severity": "critical",
                    "custom_details": {"fingerprint": alert["fingerprint"]},
                },
            }
            async with session.post(events_url, json=event) as resp:
                await resp.read()
        return web.json_response({"status": "accepted", "alerts": len(payload["alerts"])})

    app = web.Application()
    app.router.add_post("/webhook/alertmanager", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("listening", flush=True)
    await __import__("asyncio").Event().wait()


if __name__ == "__main__":
    __import__("asyncio").run(main(int(sys.argv[1]), sys.argv[2]))
