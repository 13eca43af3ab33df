"""Row ids given from outside: whole numbers within the database's INTEGER range, or nothing."""

from __future__ import annotations

import pytest

from alertbot.store.schema import MAX_ID, parse_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("#42", 42),
        (" 7 ", 7),
        (str(MAX_ID), MAX_ID),
        (str(MAX_ID + 1), None),
        ("9223372036854775808", None),
        ("0", None),
        ("-3", None),
        ("+3", None),
        ("", None),
        ("#", None),
        ("1.0", None),
        ("0x10", None),
        ("٣", None),
        ("1_000", None),
        ("9" * 5000, None),  # past int()'s digit limit: was a ValueError (500)
        ("0" * 30 + "7", None),
    ],
)
def test_parse_id(raw: str, expected: int | None) -> None:
    assert parse_id(raw) == expected
