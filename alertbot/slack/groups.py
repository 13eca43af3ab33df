"""Members of Slack user groups (``S…`` entries in a role), asked of Slack and cached for a minute."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger("alertbot.slack")

GROUP_CACHE = timedelta(seconds=60)
# While Slack cannot be asked, the last members known stand in for this long, then nobody does: a
# member removed from an approver group must not keep approving through a long API outage.
STALE_LIMIT = timedelta(minutes=5)


class GroupMembers:
    def __init__(self, client: AsyncWebClient | None, clock: Callable[[], datetime]) -> None:
        self._client = client
        self._clock = clock
        self._groups: dict[str, tuple[datetime, set[str]]] = {}

    async def __call__(self, group: str) -> set[str]:
        cached = self._groups.get(group)
        now = self._clock()
        if cached is not None and now - cached[0] < GROUP_CACHE:
            return cached[1]
        if self._client is None:
            log.warning("slack_group_unresolvable", group=group, reason="no ALERTBOT_SLACK_BOT_TOKEN")
            return set()
        try:
            resp = await self._client.usergroups_users_list(usergroup=group)
            users: list[Any] = resp.get("users") or []
            members = {str(u) for u in users}
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack_group_unresolvable", group=group, error=type(exc).__name__)
            return cached[1] if cached is not None and now - cached[0] < STALE_LIMIT else set()
        self._groups[group] = (now, members)
        return members
