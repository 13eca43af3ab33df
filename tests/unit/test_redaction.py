"""The log redactor: secret-named fields and configured secret values never reach a log line, at
any depth, while ordinary fields (numbers, flags, plain text) pass unchanged."""

from __future__ import annotations

from typing import Any

from alertbot.observability import REDACTED, Redactor


def test_secret_names_and_values_are_redacted_at_any_depth() -> None:
    """Fields named like secrets (any case, top level or nested) and configured secret values inside
    any string are replaced; ids, counts, flags and None are kept as they are."""
    redactor = Redactor()
    redactor.set_values(["hunter2", "hunter2-long"])
    event: dict[str, Any] = {
        "event": "notification_delivered",
        "outbox_id": 7,
        "latency": 0.25,
        "retried": False,
        "error": None,
        "Routing_Key": "abc",
        "detail": {"api_key": "x", "inner": ["token hunter2-long here", 3], "ok": "plain"},
        "message": "password is hunter2",
    }
    out = redactor(None, "info", dict(event))
    assert out["outbox_id"] == 7 and out["latency"] == 0.25 and out["retried"] is False and out["error"] is None
    assert out["Routing_Key"] == REDACTED
    assert out["detail"] == {"api_key": REDACTED, "inner": [f"token {REDACTED} here", 3], "ok": "plain"}
    assert out["message"] == f"password is {REDACTED}"
    # The same field names a second time (names are remembered): the same outcome.
    assert redactor(None, "info", dict(event)) == out
