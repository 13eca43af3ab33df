"""Logs and metrics.

Logs are structlog JSON lines on stderr (pretty on a TTY) with bound context; a redaction
processor removes every configured secret value and any field whose name says it is a secret.
Metrics live in one ``CollectorRegistry`` per process (per app in tests).
"""

from __future__ import annotations

import functools
import logging
import platform
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from alertbot import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape

_SECRET_KEY = re.compile(r"token|secret|password|passwd|authorization|routing_key|api_key", re.IGNORECASE)
REDACTED = "[REDACTED]"


@functools.lru_cache(maxsize=4096)
def _secret_name(key: str) -> bool:
    """Field names are few (the code's own, label names): each is tested against the pattern once."""
    return _SECRET_KEY.search(key) is not None


_PLAIN = (int, float, bool, type(None))


class Redactor:
    """A structlog processor: secret values and secret-named fields never reach the output."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def set_values(self, values: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._values = sorted({v for v in values if v}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if type(value) in _PLAIN:  # most fields of a log line: ids, counts, flags
            return value
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: REDACTED if _secret_name(str(k)) else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if _secret_name(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.scrub(event_dict[key])
        return event_dict


redactor = Redactor()


class _StderrLogger:
    """Writes each rendered line to whatever ``sys.stderr`` is at that moment."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str = "info", *, json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


class Metrics:
    """The process's Prometheus metrics (README.md, "HTTP": ``GET /metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts_received = Counter("alertbot_alerts_received", "Alerts in accepted webhook payloads.", registry=r)
        self.alerts_classified = Counter(
            "alertbot_alerts_classified", "New alert episodes by classified severity.", ["severity"], registry=r
        )
        for severity in ("critical", "warning", "info"):
            self.alerts_classified.labels(severity)
        self.alerts_suppressed = Counter(
            "alertbot_alerts_suppressed", "New alerts not notified, by reason.", ["reason"], registry=r
        )
        self.alerts_rejected = Counter(
            "alertbot_alerts_rejected",
            "Alerts stored as rejected (not processable on their own) by reason.",
            ["reason"],
            registry=r,
        )
        self.alerts_rejected.labels("invalid")
        self.webhook_requests = Counter(
            "alertbot_webhook_requests", "Webhook requests by HTTP status.", ["code"], registry=r
        )
        self.notifications = Counter(
            "alertbot_notifications",
            "Notification attempts by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.notification_latency = Histogram(
            "alertbot_notification_latency_seconds",
            "From alert accepted to notification delivered.",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
            registry=r,
        )
        # As Alertmanager and Prometheus name theirs.
        self.config_reload_successful = Gauge(
            "alertbot_config_last_reload_successful",
            "Whether the last config reload succeeded (1) or not (0).",
            registry=r,
        )
        self.config_reload_success_time = Gauge(
            "alertbot_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully (start or reload), Unix time.",
            registry=r,
        )
        self.runbook_runs = Counter(
            "alertbot_runbook_runs", "Runbook runs by runbook and outcome.", ["runbook", "outcome"], registry=r
        )
        self.outbox_pending = Gauge("alertbot_outbox_pending", "Notifications waiting in the outbox.", registry=r)
        # Read from the store at each scrape (store/figures.py, web/health.py).
        self.outbox_oldest_age = Gauge(
            "alertbot_outbox_oldest_pending_age_seconds",
            "How long the oldest notification waiting for this channel has waited (held resolves not counted).",
            ["channel"],
            registry=r,
        )
        self.incidents_firing = Gauge(
            "alertbot_incidents_firing", "Firing incidents by severity.", ["severity"], registry=r
        )
        for severity in ("critical", "warning", "info"):
            self.incidents_firing.labels(severity)
        self.watchdog_last_seen = Gauge(
            "alertbot_watchdog_last_seen_timestamp_seconds",
            "When the Watchdog (heartbeat.alertname) last arrived, Unix time; absent without heartbeat.",
            registry=r,
        )
        self.ready = Gauge(
            "alertbot_ready", "1 when the store can commit a webhook now (as /readyz), else 0.", registry=r
        )
        self.build_info = Gauge(
            "alertbot_build_info",
            "alertbot's version and Python's, as labels; always 1.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
