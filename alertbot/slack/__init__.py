"""The Slack app surface: request signing, the /alertbot slash command, interactive approvals."""
