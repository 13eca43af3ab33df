"""One error hierarchy for the whole daemon.

Every error a user or a peer can cause is an ``AlertbotError``; the web middleware turns it into
``{"error": {"code": ..., "message": ...}}`` with ``http_status``, and the CLI prints ``message``
and exits with ``exit_code``. Messages say what is wrong and where, never a secret.
"""

from __future__ import annotations


class AlertbotError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``message`` is for humans."""

    code = "internal"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AlertbotError):
    """The configuration (or a runbook file) is invalid; the message names the key path."""

    code = "invalid_config"
    exit_code = 2


class PayloadError(AlertbotError):
    """A request body or input file is not what it must be; the message says what and where."""

    code = "invalid_payload"
    http_status = 400
    exit_code = 2


class UnsupportedMediaType(PayloadError):
    code = "unsupported_media_type"
    http_status = 415


class PayloadTooLarge(PayloadError):
    code = "payload_too_large"
    http_status = 413


class RequestTimeout(PayloadError):
    """The client did not send its request body within ``webhook.body_timeout``; the connection is closed."""

    code = "request_timeout"
    http_status = 408


class Unauthorized(AlertbotError):
    code = "unauthorized"
    http_status = 401


class NotFound(AlertbotError):
    code = "not_found"
    http_status = 404


class Conflict(AlertbotError):
    """The request is valid but the resource's state does not allow it (already acknowledged, resolved)."""

    code = "conflict"
    http_status = 409


class StoreUnavailable(AlertbotError):
    """The durable store did not take the write; the caller should retry later (HTTP 503)."""

    code = "store_unavailable"
    http_status = 503
    retry_after_seconds = 5


class StoreTooNew(AlertbotError):
    """The store's schema was migrated by a newer alertbot: this one refuses it before migrating
    anything (upgrade alertbot, or restore a backup that matches it)."""

    code = "store_too_new"
    http_status = 503
    exit_code = 2


class NotifyError(AlertbotError):
    """A notification could not be delivered.

    ``retryable`` decides whether the outbox tries again (429, 5xx, network errors) or records the
    notification as failed (any other 4xx, a rejected payload). ``retry_after`` is the peer's
    ``Retry-After`` in seconds when it sent one.
    """

    code = "notify_failed"

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def retryable_http_status(status: int) -> bool:
    """The one status table for retries (as Alertmanager's notify Retrier): 429 and 5xx retry."""
    return status == 429 or status >= 500


class PrometheusError(AlertbotError):
    """Prometheus could not be reached or refused a query; the message says which and why."""

    code = "prometheus_unavailable"
    http_status = 502


class RunbookError(AlertbotError):
    """A runbook could not plan or apply (the API server refused, the target changed, ...)."""

    code = "runbook_failed"


class RunbookUsageError(RunbookError):
    """The request itself is wrong: bad params, no such run, nothing to apply to."""

    code = "runbook_invalid"
    http_status = 400
    exit_code = 2


class ReloadRefused(ConfigError):
    """A reload that was not applied (the running config stays in force): the new file does not
    validate, its runbooks do not load, or it changes what only a restart applies."""

    code = "reload_refused"
    http_status = 400
