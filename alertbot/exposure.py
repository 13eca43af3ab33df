"""Fail closed: who can reach the webhook and the HTTP API when they have no bearer token.

On a loopback address only local processes can: alertbot starts and says once that the endpoints are
open. On any other address anyone on the network could post alerts (and choose their labels), silence
paging or read incidents, so ``alertbot serve`` refuses to start without both tokens unless the config
says ``security.allow_unauthenticated: true`` (docs/operations.md, Security).
"""

from __future__ import annotations

import ipaddress

import structlog

from alertbot.errors import ConfigError
from alertbot.settings import Config, Secrets

log = structlog.get_logger("alertbot.security")

# What is missing, as the operator would set it.
_TOKENS = {
    "webhook_token": "ALERTBOT_WEBHOOK_TOKEN (or webhook.token_file)",
    "api_token": "ALERTBOT_API_TOKEN (or api.token_file)",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``""`` and ``0.0.0.0`` do not)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def missing_tokens(secrets: Secrets) -> list[str]:
    return [how for name, how in _TOKENS.items() if getattr(secrets, name) is None]


def check_exposure(config: Config, secrets: Secrets, host: str) -> None:
    """Raise ConfigError (exit 2) for unauthenticated endpoints on a non-loopback address, unless
    ``security.allow_unauthenticated``; otherwise log a warning once when an endpoint is open."""
    missing = missing_tokens(secrets)
    if not missing:
        return
    if is_loopback(host):
        log.warning(
            "unauthenticated_endpoints",
            host=host,
            missing=missing,
            detail="any local process may post alerts and use the API; set the tokens before exposing alertbot",
        )
        return
    if config.security.allow_unauthenticated:
        log.warning(
            "unauthenticated_endpoints",
            host=host,
            missing=missing,
            detail="security.allow_unauthenticated is true: anyone who reaches this address may post alerts, "
            "silence paging and read incidents",
        )
        return
    raise ConfigError(
        f"refusing to serve on {host} without authentication: set {' and '.join(missing)}, "
        "or listen on 127.0.0.1, or set security.allow_unauthenticated: true to accept anyone who can reach "
        "this address"
    )
