"""Slack user groups in roles: how they are shown, and what happens while Slack cannot be asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.slack.common import mention
from alertbot.slack.groups import GROUP_CACHE, STALE_LIMIT, GroupMembers

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [("U123", "<@U123>"), ("W9", "<@W9>"), ("S0ONCALL", "<!subteam^S0ONCALL>"), ("*", "anyone")],
)
def test_a_role_entry_is_shown_as_slack_mentions_it(entry: str, shown: str) -> None:
    """Approver lists name users as <@U…> and user groups as <!subteam^S…> (<@S…> is a broken mention)."""
    assert mention(entry) == shown


class FlakySlack:
    """usergroups.users.list (Slack Web API): answers once, then fails as during an outage."""

    def __init__(self) -> None:
        self.calls = 0

    async def usergroups_users_list(self, *, usergroup: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"ok": True, "users": ["UAPPROVER"]}
        raise SlackApiError("usergroups.users.list failed", cast(Any, {"ok": False, "error": "fatal_error"}))  # type: ignore[no-untyped-call]


async def test_membership_known_before_an_outage_stands_in_only_for_a_while() -> None:
    """When Slack cannot be asked, the last members known still count for STALE_LIMIT; after that
    the group has nobody (fail closed): a member removed meanwhile must not approve for the whole
    outage."""
    now = T0
    members = GroupMembers(cast(AsyncWebClient, FlakySlack()), clock=lambda: now)
    assert await members("S0ONCALL") == {"UAPPROVER"}
    now = T0 + GROUP_CACHE + timedelta(seconds=1)  # cache expired, Slack fails: last known stands in
    assert await members("S0ONCALL") == {"UAPPROVER"}
    now = T0 + STALE_LIMIT + timedelta(seconds=1)
    assert await members("S0ONCALL") == set()
