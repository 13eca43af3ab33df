"""In-process notifiers for pipeline tests that need a channel to fail on cue.

(The network edge — PagerDuty, Slack — is faked with real local servers, not with these.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from alertbot.errors import NotifyError
from alertbot.notify.base import Notification


class ScriptedNotifier:
    """Fails the first attempts as scripted, then succeeds; records what it delivered."""

    def __init__(self, failures: Iterable[NotifyError] = (), *, channel: str = "console") -> None:
        self.channel = channel
        self._failures = list(failures)
        self.attempts: list[Notification] = []
        self.delivered: list[Notification] = []
        self.blocked = asyncio.Event()
        self.blocked.set()

    async def send(self, notification: Notification) -> None:
        await self.blocked.wait()
        self.attempts.append(notification)
        if self._failures:
            raise self._failures.pop(0)
        self.delivered.append(notification)
