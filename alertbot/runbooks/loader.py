"""Load ``runbooks/*.yaml``; errors name the file and the key path."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from alertbot.domain.parse import describe_validation_error
from alertbot.errors import ConfigError
from alertbot.runbooks.model import Runbook
from alertbot.settings import read_yaml_file


def load_runbook(path: Path) -> Runbook:
    data = read_yaml_file(path, what="runbook")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a runbook must be a mapping of keys")
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    if runbook.name != path.stem:
        raise ConfigError(f"{path}: name: {runbook.name!r} must match the file name {path.stem!r}")
    return runbook


def load_runbooks(directory: Path) -> dict[str, Runbook]:
    """Every ``*.yaml`` in ``directory`` by name; a missing directory means no runbooks."""
    if not directory.is_dir():
        return {}
    return {rb.name: rb for rb in (load_runbook(p) for p in sorted(directory.glob("*.yaml")))}
