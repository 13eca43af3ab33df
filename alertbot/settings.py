"""Configuration in two layers: a YAML file for shape, the environment (or ``*_file`` keys) for secrets.
This module holds the root model (``Config``), the secrets, and loading both; the sections of the
file are in alertbot/settings_sections.py.

Every key is optional; the defaults are the contract's. Unknown keys and bad values are
``ConfigError``s naming the key path (``thresholds.latency.critical: ...``). Secrets are
``SecretStr``: their ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alertbot.domain.classify import ClassificationPolicy, Thresholds
from alertbot.domain.inhibit import InhibitRule, default_inhibit_rules
from alertbot.domain.parse import Loc, describe_validation_error
from alertbot.domain.route import RouteNode, default_route_tree
from alertbot.errors import ConfigError
from alertbot.settings_sections import (
    CONFIG_DIR,
    ApiConfig,
    AutomationConfig,
    ContextConfig,
    CorrelationConfig,
    FlappingConfig,
    HeartbeatConfig,
    KubernetesConfig,
    OncallConfig,
    OutboxConfig,
    PagerDutyConfig,
    PrometheusConfig,
    RetentionConfig,
    RunbooksConfig,
    Section,
    SecurityConfig,
    ServerConfig,
    SilencesConfig,
    SlackConfig,
    StorageConfig,
    StormConfig,
    UiConfig,
    WebhookConfig,
)


class Config(Section):
    """The whole configuration file: one field per top-level key."""

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
    context: ContextConfig = ContextConfig()
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
    oncall: OncallConfig = OncallConfig()
    ui: UiConfig = UiConfig()

    @model_validator(mode="after")
    def _route_escalations_exist(self) -> Config:
        known = {policy.name for policy in self.oncall.escalations}
        for name in self.routes.escalations():
            if name not in known:
                hint = f" (known: {', '.join(sorted(known))})" if known else " (oncall.escalations is empty)"
                raise ValueError(f"routes: escalation {name!r} is not a policy in oncall.escalations{hint}")
        return self

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
    slack_app_token: SecretStr | None = None
    pagerduty_webhook_secret: SecretStr | None = None


class Secrets(BaseModel):
    """The resolved secrets: a ``*_file`` key in the config wins over the environment variable."""

    model_config = ConfigDict(frozen=True)

    webhook_token: SecretStr | None = None
    api_token: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    pagerduty_webhook_secret: SecretStr | None = None  # one or more (comma-separated) v3 webhook secrets
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
        out += self.pagerduty_webhook_secrets()
        return out

    def pagerduty_webhook_secrets(self) -> list[str]:
        """The PagerDuty webhook signing secrets (more than one while a secret is rotated)."""
        secret = self.pagerduty_webhook_secret
        raw = secret.get_secret_value() if secret is not None else ""
        return [part.strip() for part in raw.split(",") if part.strip()]


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
        "slack_app_token": ("slack.app_token_file", config.slack.app_token_file),
        "pagerduty_webhook_secret": ("pagerduty.webhook_secret_file", config.pagerduty.webhook_secret_file),
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
    """A config from already-parsed data (errors name ``source`` and the key path)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, model=Config)}") from None


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None


def _parse_yaml(text: str, path: Path) -> Any:
    """A YAML document's data; a syntax error is a ConfigError naming file, line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(
    path: Path, model: type[M], *, what: str, empty: Any = None, context: dict[str, Any] | None = None
) -> M:
    """A YAML file validated as ``model``. Each problem is named by ``file:line:``, its key path and,
    for a misspelt key, the key it was probably meant to be. An empty file is ``empty``."""
    text = _read_text(path, what)
    data = _parse_yaml(text, path)
    data = empty if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = _key_lines(yaml.compose(text))

        def where(loc: Loc) -> str:
            while loc and loc not in lines:
                loc = loc[:-1]  # a model-level problem: the line of the key holding it
            return f"{path}:{lines[loc]}: " if loc else f"{path}: "

        raise ConfigError(describe_validation_error(exc, model=model, where=where)) from None


def _key_lines(node: yaml.Node | None, loc: Loc = ()) -> dict[Loc, int]:
    """Where each key path of a composed YAML document starts (1-based line)."""
    out: dict[Loc, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                out[(*loc, key.value)] = key.start_mark.line + 1
                out.update(_key_lines(value, (*loc, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*loc, index)] = item.start_mark.line + 1
            out.update(_key_lines(item, (*loc, index)))
    return out


def load_config(path: Path | str | None) -> Config:
    """Read and validate a config file; ``None`` gives the embedded defaults. Relative paths in the
    file are read against its directory (alertbot/settings_sections.py, ``ConfigPath``)."""
    if path is None:
        return Config()
    path = Path(path)
    return load_yaml_model(path, Config, what="config file", empty={}, context={CONFIG_DIR: path.parent})


def config_path_from_env(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get("ALERTBOT_CONFIG")
    return Path(env) if env else None
