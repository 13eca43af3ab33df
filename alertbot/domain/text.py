"""Text from alerts is data, never markup (docs/operations.md, "Alert content is untrusted")."""

from __future__ import annotations


def escape_mrkdwn(value: str) -> str:
    """``value`` shown as itself in Slack mrkdwn: ``&``, ``<`` and ``>`` escaped, ampersand first.

    Slack reads ``<...>`` as a link, a mention (``<!channel>``, ``<@U123>``, ``<!subteam^S1>``) or a
    date; escaping these three characters (all Slack decodes) leaves every other character as it is.
    Apply it to each value that came from outside (an alert, a label, an annotation, a change event)
    before putting it into a message, never to a whole message (alertbot's own links and mentions
    must keep working).
    """
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
