"""CPU per log line as ``alertbot serve`` writes one at its default level (``notification_delivered``,
once per delivered notification): structlog, the redactor with three configured secrets, JSON, stderr;
and the redactor's part alone (best of five).

    .venv/bin/python bench/_log_line.py 2>/dev/null [--lines 20000]
"""

from __future__ import annotations

import argparse
import time
import timeit

import structlog

from alertbot.observability import configure_logging, redactor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    configure_logging("info", json_logs=True)
    redactor.set_values(["R0UT1NGKEYfake0000000000000000001", "xoxb-fake-bot-token", "signing-secret-value"])
    log = structlog.get_logger("alertbot.outbox")
    fields = {"outbox_id": 99, "incident_id": 12345, "channel": "console", "notification": "trigger", "attempts": 1}
    started = time.process_time()
    for _ in range(args.lines):
        log.info("notification_delivered", **fields)
    per_line = (time.process_time() - started) / args.lines * 1000
    event = {**fields, "event": "notification_delivered", "level": "info", "timestamp": "2026-12-01T23:38:47.596179Z"}
    best = min(timeit.repeat(lambda: redactor(None, "info", dict(event)), number=args.lines, repeat=5))
    print(f"{per_line:.4f} ms CPU per log line, {best / args.lines * 1e6:.2f} us of it in the redactor")


if __name__ == "__main__":
    main()
