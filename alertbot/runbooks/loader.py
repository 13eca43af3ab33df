"""Load ``runbooks/*.yaml``; errors name the file and the key path."""

from __future__ import annotations

from pathlib import Path

from alertbot.errors import ConfigError
from alertbot.runbooks.model import Runbook
from alertbot.settings import load_yaml_model


def load_runbook(path: Path) -> Runbook:
    runbook = load_yaml_model(path, Runbook, what="runbook")
    if runbook.name != path.stem:
        raise ConfigError(f"{path}: name: {runbook.name!r} must match the file name {path.stem!r}")
    return runbook


def load_runbooks(directory: Path) -> dict[str, Runbook]:
    """Every ``*.yaml`` in ``directory`` by name; a missing directory means no runbooks."""
    if not directory.is_dir():
        return {}
    return {rb.name: rb for rb in (load_runbook(p) for p in sorted(directory.glob("*.yaml")))}
