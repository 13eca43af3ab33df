"""Slack request signing, v0: ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")``.

Checked on the raw body before anything parses it. A request is refused (401) when the signature
is missing or wrong, the timestamp is more than 5 minutes away from now, or the same signed request
was already seen (a replay inside the window).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from datetime import datetime

from pydantic import SecretStr

from alertbot.errors import Unauthorized

WINDOW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackVerifier:
    def __init__(self, secret: SecretStr | None, *, max_remembered: int = 10_000) -> None:
        self._secret = secret
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_remembered

    def verify(self, *, timestamp: str | None, signature: str | None, body: bytes, now: datetime) -> None:
        if self._secret is None:
            raise Unauthorized("Slack requests are refused: ALERTBOT_SLACK_SIGNING_SECRET is not configured")
        if not timestamp or not signature:
            raise Unauthorized("missing Slack signature headers")
        try:
            sent = int(timestamp)
        except ValueError:
            raise Unauthorized("malformed X-Slack-Request-Timestamp") from None
        current = now.timestamp()
        if abs(current - sent) > WINDOW_SECONDS:
            raise Unauthorized("stale Slack request (timestamp outside 5 minutes)")
        expected = sign(self._secret.get_secret_value(), timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Unauthorized("invalid Slack signature")
        self._forget_older_than(current - WINDOW_SECONDS)
        if signature in self._seen:
            raise Unauthorized("replayed Slack request")
        self._seen[signature] = float(sent)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def _forget_older_than(self, cutoff: float) -> None:
        while self._seen:
            oldest_sig, sent = next(iter(self._seen.items()))
            if sent >= cutoff:
                break
            del self._seen[oldest_sig]
