"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alertbot.store.engine import Store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store in the test's temporary directory."""
    store = await Store.open(f"sqlite:///{tmp_path}/alertbot.db")
    yield store
    await store.close()
