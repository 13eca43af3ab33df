"""``alertbot slack manifest``: the Slack app alertbot needs, as a manifest to paste into "Create New
App → From an app manifest" (or the "App Manifest" tab of an existing app).

The same app serves notifications (bot token) and ``/alertbot`` with its buttons, which reach
alertbot either over Socket Mode (no public endpoint; the app-level token is made by hand under
"Basic Information → App-Level Tokens" with scope ``connections:write``, since a manifest cannot
create it) or over HTTPS at ``/slack/commands`` and ``/slack/interactions``.
"""

from __future__ import annotations

from typing import Any

from alertbot.slack.commands import USAGE_HINT

# chat:write posts and edits alert messages; commands is /alertbot; usergroups:read resolves
# user-group approvers and responders (S...); files:write uploads a page's graph into its thread;
# im:write opens the direct messages of escalation steps (conversations.open).
BOT_SCOPES = ["chat:write", "commands", "files:write", "im:write", "usergroups:read"]


def manifest(*, name: str = "alertbot", url: str | None = None, socket_mode: bool = True) -> dict[str, Any]:
    """The app manifest; ``url`` (alertbot's public base URL) is required without Socket Mode."""
    if not socket_mode and not url:
        raise ValueError("without Socket Mode, Slack needs alertbot's public HTTPS URL (--url)")
    base = (url or "").rstrip("/")
    command: dict[str, Any] = {
        "command": "/alertbot",
        "description": "Incidents, silences and runbooks",
        "usage_hint": USAGE_HINT,
        "should_escape": False,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        command["url"] = f"{base}/slack/commands"
        interactivity["request_url"] = f"{base}/slack/interactions"
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Pages from Alertmanager: ack, resolve, silence, and approve runbooks",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
