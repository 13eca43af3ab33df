"""Slack request signing, v0: ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")``.

Checked on the raw body before anything parses it. A request is refused (401) when the signature
is missing, malformed (not ASCII, say) or wrong, the timestamp is more than 5 minutes away from now,
or the same signed request was already seen (a replay inside the window). With a store, "seen" means
by any replica sharing it; without one, by this process.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from alertbot.errors import Unauthorized
from alertbot.store import slack_requests
from alertbot.store.engine import Store

WINDOW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackVerifier:
    def __init__(self, secret: SecretStr | None, *, max_remembered: int = 10_000) -> None:
        self._secret = secret
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_remembered

    async def verify(
        self, *, timestamp: str | None, signature: str | None, body: bytes, now: datetime, store: Store | None = None
    ) -> None:
        """Refuse (Unauthorized) unless the request is signed, fresh and not seen before — by any
        replica sharing ``store``, or by this process when there is none."""
        self.check_signature(timestamp=timestamp, signature=signature, body=body, now=now)
        assert timestamp is not None and signature is not None
        if store is None:
            self._remember_here(signature, int(timestamp), now)
            return
        sent_at = datetime.fromtimestamp(int(timestamp), UTC)
        # Kept for twice the window: each replica judges the window by its own clock, so one whose clock
        # runs ahead must not forget a request that a replica behind it would still accept.
        keep = timedelta(seconds=2 * WINDOW_SECONDS)
        if not await store.write(slack_requests.remember, signature, sent_at=sent_at, forget_before=now - keep):
            raise Unauthorized("replayed Slack request")

    def check_signature(self, *, timestamp: str | None, signature: str | None, body: bytes, now: datetime) -> None:
        if self._secret is None:
            raise Unauthorized("Slack requests are refused: ALERTBOT_SLACK_SIGNING_SECRET is not configured")
        if not timestamp or not signature:
            raise Unauthorized("missing Slack signature headers")
        # Headers arrive as text with undecodable bytes kept as surrogates: only ASCII can be a signature.
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            raise Unauthorized("malformed X-Slack-Request-Timestamp")
        if not signature.isascii() or len(signature) > 128:
            raise Unauthorized("malformed X-Slack-Signature")
        if abs(now.timestamp() - int(timestamp)) > WINDOW_SECONDS:
            raise Unauthorized("stale Slack request (timestamp outside 5 minutes)")
        expected = sign(self._secret.get_secret_value(), timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Unauthorized("invalid Slack signature")

    def _remember_here(self, signature: str, sent: int, now: datetime) -> None:
        self._forget_older_than(now.timestamp() - WINDOW_SECONDS)
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
