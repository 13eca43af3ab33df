"""What the CLI's command groups share: config loading, running a coroutine, opening the store, and
turning an ``AlertbotError`` into one line on stderr and its exit code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from alertbot.errors import AlertbotError, ConfigError
from alertbot.runbooks.loader import load_runbooks
from alertbot.runbooks.model import Runbook
from alertbot.settings import Config, config_path_from_env, load_config
from alertbot.store.engine import Store, sqlite_path


def flag(name: str, help: str) -> Any:
    """A boolean option that takes no value (metavar "": `--help` shows no `<bool>` after it)."""
    return typer.Option(name, metavar="", help=help)


JsonOpt = Annotated[bool, flag("--json", "One JSON object per line.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file (default: $ALERTBOT_CONFIG).")]
T = TypeVar("T")


def fail(error: AlertbotError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(error.exit_code)


def load(path: Path | None) -> Config:
    try:
        return load_config(config_path_from_env(path))
    except AlertbotError as exc:
        fail(exc)


def runbooks_of(cfg: Config) -> dict[str, Runbook]:
    """The config's runbooks, or the reason they cannot be loaded as the command's error."""
    try:
        return load_runbooks(cfg.runbooks.dir)
    except AlertbotError as exc:
        fail(exc)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A call whose ``AlertbotError`` becomes the command's error line and exit code."""
    try:
        return fn(*args, **kwargs)
    except AlertbotError as exc:
        fail(exc)


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except AlertbotError as exc:
        fail(exc)


async def with_store(cfg: Config, action: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    """Run ``action`` on the daemon's store. With no database named in a config file, the default
    SQLite file (relative to the current directory) must exist already: a new, empty database made
    wherever the CLI happens to run is never the one the daemon reads."""
    url = cfg.storage.database_url()
    path = sqlite_path(url)
    named = "storage" in cfg.model_fields_set and cfg.storage.model_fields_set & {"url", "url_file"}
    if path is not None and not named and not path.exists():
        raise ConfigError(
            f"no alertbot database at {path.absolute()}: give the daemon's config file "
            "(--config or ALERTBOT_CONFIG); its relative paths are read against its own directory"
        )
    store = await Store.open(url, busy_timeout=cfg.storage.busy_timeout)
    try:
        return await action(store)
    finally:
        await store.close()
