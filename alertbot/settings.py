"""Configuration in two layers: a YAML file for shape, the environment (or ``*_file`` keys) for secrets.

Every key is optional; the defaults are the contract's. Unknown keys and bad values are
``ConfigError``s naming the key path (``thresholds.latency.critical: ...``). Secrets are
``SecretStr``: their ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from alertbot.domain.classify import ClassificationPolicy, Thresholds
from alertbot.domain.flapping import FlapPolicy
from alertbot.domain.inhibit import InhibitRule, default_inhibit_rules
from alertbot.domain.models import Severity
from alertbot.domain.parse import Duration, describe_validation_error
from alertbot.domain.route import RouteNode, default_route_tree
from alertbot.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    shutdown_timeout: Duration = timedelta(seconds=10)


class WebhookConfig(_Section):
    max_body_bytes: int = Field(1_048_576, gt=0)
    # Bodies read and parsed at once; further requests wait their turn with their bytes still in the
    # socket, so a flood of large posts costs at most about this many bodies of memory.
    max_concurrent_bodies: int = Field(32, gt=0)
    token_file: Path | None = None
    # Per-alert limits and timeouts against clients that are slow or hostile (docs/operations.md,
    # "Timeouts and input limits").
    max_value_bytes: int = Field(16_384, ge=256)  # longer label / annotation values are cut, marked
    body_timeout: Duration = timedelta(seconds=10)  # from a request's headers to the end of its body
    header_timeout: Duration = timedelta(seconds=10)  # for a request's headers (and an idle connection)

    @field_validator("body_timeout", "header_timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be greater than 0")
        return value


class ApiConfig(_Section):
    token_file: Path | None = None


_STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


class StorageConfig(_Section):
    url: str = "sqlite:///var/alertbot.db"
    url_file: Path | None = None  # a file holding the URL (a password in it stays out of the config)
    busy_timeout: Duration = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(_STORE_SCHEMES):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    def database_url(self) -> str:
        """``url``, or the URL in ``url_file`` when that is set."""
        if self.url_file is None:
            return self.url
        try:
            url = self.url_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"storage.url_file: cannot read {self.url_file}: {exc.strerror}") from None
        if not url.startswith(_STORE_SCHEMES):
            raise ConfigError(f"storage.url_file: {self.url_file} must hold a sqlite:/// or postgresql:// URL")
        return url


class OutboxConfig(_Section):
    """How undelivered notifications are retried: exponential backoff with jitter, then give up."""

    initial_backoff: Duration = timedelta(seconds=1)
    max_backoff: Duration = timedelta(minutes=5)
    give_up_after: Duration = timedelta(hours=24)
    send_timeout: Duration = timedelta(seconds=10)
    poll_interval: Duration = timedelta(seconds=5)


class CorrelationConfig(_Section):
    """Changes to an alert's service within ``lookback`` before it started are shown with its page."""

    lookback: Duration = timedelta(minutes=30)


class StormConfig(_Section):
    """Alert storms: past ``threshold`` new alerts of one Alertmanager group within ``window``,
    further alerts of the group are summarised in one message (one PagerDuty incident) per group."""

    threshold: int = Field(10, ge=1)
    window: Duration = timedelta(minutes=5)


class FlappingConfig(_Section):
    """Flap damping: ``transitions`` firing↔resolved flips of one alert within ``window`` make it
    flapping: no new pages, one Slack message updated with the count, resolves held until ``quiet``."""

    transitions: int = Field(6, ge=2)
    window: Duration = timedelta(minutes=30)
    quiet: Duration = timedelta(minutes=10)

    def policy(self) -> FlapPolicy:
        return FlapPolicy(self.transitions, self.window, self.quiet)


class PagerDutyConfig(_Section):
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_file: Path | None = None
    # Per-route keys: a route receiver `pagerduty:NAME` pages with the key from this file, else from
    # ALERTBOT_PAGERDUTY_ROUTING_KEY_NAME (NAME upper-cased, other characters as _).
    routing_key_files: dict[str, Path] = Field(default_factory=dict)


class SlackChannels(_Section):
    critical: str = "#alerts-critical"
    warning: str = "#alerts"
    info: str = "#alerts-info"

    def for_severity(self, severity: Severity) -> str:
        return str(getattr(self, severity.value))


class SlackConfig(_Section):
    api_url: str = "https://slack.com/api/"
    channels: SlackChannels = SlackChannels()
    runbook_approvers: list[str] = Field(default_factory=list)
    allow_self_approval: bool = False
    # Who may ack, resolve and silence from Slack (user IDs U…/W…, user-group IDs S…; ["*"]: anyone
    # in the workspace). Empty: nobody — runbook approvers may too. See docs/operations.md.
    responders: list[str] = Field(default_factory=list)
    bot_token_file: Path | None = None
    signing_secret_file: Path | None = None


class KubeWatchConfig(_Section):
    """Record Deployment rollouts and VirtualService weight changes in these namespaces as changes."""

    namespaces: list[str] = Field(min_length=1)
    resync: Duration = timedelta(minutes=10)  # list again this often, whatever the watch said
    settle: Duration = timedelta(minutes=10)  # weights healthy this long are last-known-good
    initial_backoff: Duration = timedelta(milliseconds=500)
    max_backoff: Duration = timedelta(seconds=30)


class KubernetesConfig(_Section):
    kubeconfig: Path | None = None
    watch: KubeWatchConfig | None = None  # None: no watch (POST /api/v1/events still works)

    @property
    def settle(self) -> timedelta:
        """How long weights must stay healthy to count as last-known-good."""
        return self.watch.settle if self.watch is not None else KubeWatchConfig.model_fields["settle"].default


class PrometheusConfig(_Section):
    url: str | None = None


class RunbooksConfig(_Section):
    dir: Path = Path("runbooks")
    dry_run: bool = False


class HeartbeatConfig(_Section):
    alertname: str = "Watchdog"
    max_interval: Duration = timedelta(minutes=5)


class AutomationConfig(_Section):
    name: str = Field(min_length=1)
    match: dict[str, str] = Field(default_factory=dict)
    runbook: str = Field(min_length=1)
    params: dict[str, str] = Field(default_factory=dict)
    mode: Literal["auto", "approve", "shadow"] = "approve"  # shadow: record that it would run, run nothing
    cooldown: Duration = timedelta(minutes=10)
    keep_after_resolve: bool = False  # a pending approval outlives its alert's resolve

    # The Kubernetes objects its runs may act on, as `namespace/name` glob patterns (`payments/*`):
    # whoever can post to Alertmanager chooses the labels a target is templated from. Required when
    # the target comes from labels (check-config); a run whose target is outside is rejected.
    targets: list[str] = Field(default_factory=list)

    @field_validator("targets")
    @classmethod
    def _namespace_slash_name(cls, value: list[str]) -> list[str]:
        for pattern in value:
            namespace, slash, name = pattern.partition("/")
            if not slash or not namespace or not name or "/" in name:
                raise ValueError(f"{pattern!r} must be a namespace/name glob pattern, e.g. payments/*")
        return value


class SilencesConfig(_Section):
    """Limits on every new silence, whether from Slack, the HTTP API or the CLI."""

    max_duration: Duration = timedelta(days=7)


class RetentionConfig(_Section):
    """How long history is kept (see docs/operations.md, Retention). A background job deletes, every
    ``interval``, in small batches: incidents resolved more than ``incidents`` ago (with their
    notifications, notes and decisions), silences ended and alerts rejected as long ago; runbook runs and change
    events older than ``audit``. ``retention: null`` keeps everything."""

    incidents: Duration = timedelta(days=30)
    audit: Duration = timedelta(days=365)
    interval: Duration = timedelta(minutes=5)

    @field_validator("incidents", "audit", "interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class SecurityConfig(_Section):
    """``allow_unauthenticated``: serve the webhook and the HTTP API on a non-loopback address
    without their bearer tokens (anyone who reaches the port may post alerts, silence and read).
    Off: ``alertbot serve`` refuses to start there without both tokens (docs/operations.md)."""

    allow_unauthenticated: bool = False


class Config(_Section):
    mode: Literal["live", "shadow"] = "live"  # shadow: decide and record everything, send and change nothing
    server: ServerConfig = ServerConfig()
    webhook: WebhookConfig = WebhookConfig()
    api: ApiConfig = ApiConfig()
    storage: StorageConfig = StorageConfig()
    thresholds: Thresholds = Thresholds()
    classification: ClassificationPolicy = ClassificationPolicy()
    routes: RouteNode = Field(default_factory=default_route_tree)
    inhibit_rules: list[InhibitRule] = Field(default_factory=default_inhibit_rules)
    outbox: OutboxConfig = OutboxConfig()
    storm: StormConfig | None = StormConfig()
    flapping: FlappingConfig | None = FlappingConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    pagerduty: PagerDutyConfig = PagerDutyConfig()
    slack: SlackConfig = SlackConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    runbooks: RunbooksConfig = RunbooksConfig()
    heartbeat: HeartbeatConfig | None = None
    automations: list[AutomationConfig] = Field(default_factory=list)
    retention: RetentionConfig | None = RetentionConfig()
    silences: SilencesConfig = SilencesConfig()
    security: SecurityConfig = SecurityConfig()

    @field_validator("automations")
    @classmethod
    def _unique_names(cls, value: list[AutomationConfig]) -> list[AutomationConfig]:
        names = [a.name for a in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"automation names must be unique, repeated: {', '.join(dupes)}")
        return value


class EnvSecrets(BaseSettings):
    """``ALERTBOT_*`` environment variables that carry secrets."""

    model_config = SettingsConfigDict(env_prefix="ALERTBOT_", extra="ignore")

    webhook_token: SecretStr | None = None
    api_token: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None


class Secrets(BaseModel):
    """The resolved secrets: a ``*_file`` key in the config wins over the environment variable."""

    model_config = ConfigDict(frozen=True)

    webhook_token: SecretStr | None = None
    api_token: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    pagerduty_routing_keys: dict[str, SecretStr] = Field(default_factory=dict)  # per route: pagerduty:NAME

    def scrub(self, text: str) -> str:
        """``text`` with every secret value replaced (peers sometimes echo what they were sent)."""
        for value in sorted(self.values(), key=len, reverse=True):
            text = text.replace(value, "[REDACTED]")
        return text

    def values(self) -> list[str]:
        """Every secret value, for the log redaction processor."""
        out = [key.get_secret_value() for key in self.pagerduty_routing_keys.values() if key.get_secret_value()]
        for name in type(self).model_fields:
            secret = getattr(self, name)
            if isinstance(secret, SecretStr) and secret.get_secret_value():
                out.append(secret.get_secret_value())
        return out


def _read_secret_file(path: Path, key: str) -> SecretStr:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read secret file {str(path)!r}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: secret file {str(path)!r} is empty")
    return SecretStr(value)


def load_secrets(config: Config) -> Secrets:
    env = EnvSecrets()
    files = {
        "webhook_token": ("webhook.token_file", config.webhook.token_file),
        "api_token": ("api.token_file", config.api.token_file),
        "pagerduty_routing_key": ("pagerduty.routing_key_file", config.pagerduty.routing_key_file),
        "slack_bot_token": ("slack.bot_token_file", config.slack.bot_token_file),
        "slack_signing_secret": ("slack.signing_secret_file", config.slack.signing_secret_file),
    }
    values: dict[str, SecretStr | None] = {}
    for name, (key, path) in files.items():
        from_env: SecretStr | None = getattr(env, name)
        if from_env is not None and not from_env.get_secret_value():
            from_env = None
        values[name] = _read_secret_file(path, key) if path is not None else from_env
    named = {
        _key_name(var.removeprefix(NAMED_PD_KEY_PREFIX)): SecretStr(value)
        for var, value in os.environ.items()
        if var.startswith(NAMED_PD_KEY_PREFIX) and value
    }
    for name, path in config.pagerduty.routing_key_files.items():
        named[_key_name(name)] = _read_secret_file(path, f"pagerduty.routing_key_files.{name}")
    return Secrets(**values, pagerduty_routing_keys=named)


NAMED_PD_KEY_PREFIX = "ALERTBOT_PAGERDUTY_ROUTING_KEY_"


def _key_name(name: str) -> str:
    """``payments-oncall`` and ``PAYMENTS_ONCALL`` name the same key."""
    return re.sub(r"[^a-z0-9]", "_", name.lower())


def parse_config(data: Any, *, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None


def read_yaml_file(path: Path, *, what: str) -> Any:
    """A YAML file's data; unreadable files and syntax errors are ConfigErrors naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None


def load_config(path: Path | str | None) -> Config:
    """Read and validate a config file; ``None`` gives the embedded defaults."""
    if path is None:
        return Config()
    path = Path(path)
    return parse_config(read_yaml_file(path, what="config file"), source=str(path))


def config_path_from_env(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get("ALERTBOT_CONFIG")
    return Path(env) if env else None
