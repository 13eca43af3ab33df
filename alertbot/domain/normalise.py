"""Normalising one alert at the edge, so that nothing one alert contains can cost another its page.

Times outside a sane range (1970 to 2200, or anything whose conversion to UTC overflows) are
clamped to the range; label and annotation values longer than ``webhook.max_value_bytes`` are cut
with a visible marker. Each change is noted on the alert itself, in the annotation
``alertbot_normalised``, so whoever reads the incident or the notification sees it. Go's zero time
(Alertmanager's ``endsAt`` of a firing alert) is not a clamp: it means "not ended".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

NORMALISED_ANNOTATION = "alertbot_normalised"
TRUNCATION_MARKER = "…[truncated by alertbot]"
DEFAULT_MAX_VALUE_BYTES = 16 * 1024
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_NOTES = 10


@dataclass
class Normalising:
    """The validation context of one alert: its limits in, what was changed out."""

    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def summary(self) -> str:
        shown = self.notes[:MAX_NOTES]
        more = len(self.notes) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def clamp_time(value: datetime) -> tuple[datetime, str | None]:
    """``value`` in UTC within [1970-01-01, 2200-01-01], and why it was changed (None: it was not).

    A naive time is taken as UTC. Year 1 or 9999 with an offset may not be representable in UTC at
    all (``OverflowError``): such a time is clamped to the bound it lies beyond.
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        bound = EARLIEST if value.year < EARLIEST.year else LATEST
        return bound, f"{value.isoformat()} outside {_stamp(EARLIEST)}..{_stamp(LATEST)}, clamped to {_stamp(bound)}"
    if EARLIEST <= utc <= LATEST:
        return utc, None
    bound = EARLIEST if utc < EARLIEST else LATEST
    return bound, f"{value.isoformat()} outside {_stamp(EARLIEST)}..{_stamp(LATEST)}, clamped to {_stamp(bound)}"


def truncate_value(value: str, limit: int) -> str | None:
    """``value`` cut to at most ``limit`` UTF-8 bytes, ending in ``TRUNCATION_MARKER``; None when it fits."""
    if len(value) * 4 <= limit:  # the common case, without encoding
        return None
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return None
    room = max(limit - len(TRUNCATION_MARKER.encode()), 0)
    return encoded[:room].decode("utf-8", "ignore") + TRUNCATION_MARKER
