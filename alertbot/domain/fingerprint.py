"""Alertmanager's alert fingerprint: FNV-1a 64 over the sorted label pairs.

Same algorithm as prometheus/common ``model.LabelSet.Fingerprint``: for each label name in sorted
order, hash the name, a 0xff separator byte, the value and another 0xff; print as 16 hex digits.
"""

from __future__ import annotations

from collections.abc import Mapping

_OFFSET = 14695981039346656037
_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF


def label_fingerprint(labels: Mapping[str, str]) -> str:
    h = _OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in chunk:
                h = ((h ^ byte) * _PRIME) & _MASK
            h = ((h ^ _SEPARATOR) * _PRIME) & _MASK
    return f"{h:016x}"
