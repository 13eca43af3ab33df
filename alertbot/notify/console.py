"""The embedded default: one JSON line per notification on stdout."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from alertbot.notify.base import Notification


class ConsoleNotifier:
    channel = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, notification: Notification) -> None:
        stream = self._stream or sys.stdout
        line = json.dumps(notification.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        stream.write(line + "\n")
        stream.flush()
