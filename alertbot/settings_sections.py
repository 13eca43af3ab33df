"""The sections of the configuration file: one pydantic model per top-level key (``server``,
``webhook``, ``storage``, ``slack``, ``automations``, ...) and the models nested in them.

Every key is optional; the defaults are the contract's (docs/configuration.md). Unknown keys are
errors naming the key path. The root model, ``Config``, and loading live in alertbot/settings.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alertbot.domain.flapping import FlapPolicy
from alertbot.domain.link_templates import placeholder_problem
from alertbot.domain.models import Severity
from alertbot.domain.oncall import EscalationPolicy, Override, Schedule
from alertbot.domain.parse import Duration
from alertbot.domain.passwords import check_format
from alertbot.errors import ConfigError

CONFIG_DIR = "config_dir"  # validation context key: the directory of the file being loaded


def _against_config_dir(value: Path, info: ValidationInfo) -> Path:
    """A relative path written in a config file is read against that file's directory, so the
    daemon and the CLI mean the same file wherever they are started (defaults are not rewritten)."""
    base = (info.context or {}).get(CONFIG_DIR)
    return value if base is None or value.is_absolute() else Path(base) / value


def _sqlite_against_config_dir(url: str, info: ValidationInfo) -> str:
    """``sqlite:///relative.db`` in a config file: relative to the file's directory, like other paths."""
    path = url.removeprefix("sqlite:///")
    if path == url or path.startswith(":memory:") or path.startswith("file:"):
        return url
    return "sqlite:///" + str(_against_config_dir(Path(path), info))


ConfigPath = Annotated[Path, AfterValidator(_against_config_dir)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    shutdown_timeout: Duration = timedelta(seconds=10)
    # How often to look whether the config file or a runbook changed, and reload when it did (as
    # SIGHUP does); null: only SIGHUP and POST /-/reload reload.
    watch_config: Duration | None = None
    # The URL people reach alertbot by (as Alertmanager's --web.external-url): links to alertbot in
    # pages, such as the incident graph in PagerDuty, start with it. Null: no such links.
    external_url: Annotated[str, AfterValidator(lambda v: _http_url(v).rstrip("/"))] | None = None

    @field_validator("watch_config")
    @classmethod
    def _watch_at_least_a_second(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("must be at least 1s (or null: no watching)")
        return value


class WebhookConfig(Section):
    max_body_bytes: int = Field(1_048_576, gt=0)
    # Bodies read and parsed at once; further requests wait their turn with their bytes still in the
    # socket, so a flood of large posts costs at most about this many bodies of memory.
    max_concurrent_bodies: int = Field(32, gt=0)
    token_file: ConfigPath | None = None
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


class ApiConfig(Section):
    token_file: ConfigPath | None = None


_STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


class StorageConfig(Section):
    url: str = "sqlite:///var/alertbot.db"
    url_file: ConfigPath | None = None  # a file holding the URL (a password in it stays out of the config)
    busy_timeout: Duration = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str, info: ValidationInfo) -> str:
        if not value.startswith(_STORE_SCHEMES):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return _sqlite_against_config_dir(value, info)

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


class OutboxConfig(Section):
    """How undelivered notifications are retried: exponential backoff with jitter, then give up."""

    initial_backoff: Duration = timedelta(seconds=1)
    max_backoff: Duration = timedelta(minutes=5)
    give_up_after: Duration = timedelta(hours=24)
    send_timeout: Duration = timedelta(seconds=10)
    poll_interval: Duration = timedelta(seconds=5)


class CorrelationConfig(Section):
    """Changes to an alert's service within ``lookback`` before it started are shown with its page."""

    lookback: Duration = timedelta(minutes=30)


def _link_template(value: str) -> str:
    if (problem := placeholder_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {value[:80]!r}")
    return value


TemplateText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_link_template)]
LinkURL = Annotated[TemplateText, AfterValidator(_http_url)]


class LinkTemplate(Section):
    """A deep link on every page: ``text`` and ``url`` with placeholders (alertbot/notify/links.py)."""

    text: TemplateText
    url: LinkURL


class GrafanaContext(Section):
    url: Annotated[str, AfterValidator(_http_url)]
    dashboard: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")  # the dashboard's UID
    # Query parameters for the dashboard's variables, templated like links.
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")], TemplateText] = Field(
        default_factory=lambda: {"var-service": "{{ service }}", "var-namespace": "{{ namespace }}"}
    )


class JaegerContext(Section):
    url: Annotated[str, AfterValidator(_http_url)]
    # The service name Jaeger knows the alerting service by: with Istio, "{{ service }}.{{ namespace }}".
    service: TemplateText = "{{ service }}"


class KialiContext(Section):
    url: Annotated[str, AfterValidator(_http_url)]


class ContextConfig(Section):
    """What a page carries besides the alert: deep links into the stack, over ``lookback`` before the
    alert started until it ended (or now)."""

    lookback: Duration = timedelta(hours=1)
    links: list[LinkTemplate] = Field(default_factory=list, max_length=20)
    grafana: GrafanaContext | None = None
    jaeger: JaegerContext | None = None
    kiali: KialiContext | None = None


class StormConfig(Section):
    """Alert storms: past ``threshold`` new alerts of one Alertmanager group within ``window``,
    further alerts of the group are summarised in one message (one PagerDuty incident) per group."""

    threshold: int = Field(10, ge=1)
    window: Duration = timedelta(minutes=5)


class FlappingConfig(Section):
    """Flap damping: ``transitions`` firing↔resolved flips of one alert within ``window`` make it
    flapping: no new pages, one Slack message updated with the count, resolves held until ``quiet``."""

    transitions: int = Field(6, ge=2)
    window: Duration = timedelta(minutes=30)
    quiet: Duration = timedelta(minutes=10)

    def policy(self) -> FlapPolicy:
        return FlapPolicy(self.transitions, self.window, self.quiet)


class PagerDutyConfig(Section):
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_file: ConfigPath | None = None
    # Per-route keys: a route receiver `pagerduty:NAME` pages with the key from this file, else from
    # ALERTBOT_PAGERDUTY_ROUTING_KEY_NAME (NAME upper-cased, other characters as _).
    routing_key_files: dict[str, ConfigPath] = Field(default_factory=dict)
    # POST /webhook/pagerduty (v3 webhooks, docs/oncall.md): the signing secret(s), else from
    # ALERTBOT_PAGERDUTY_WEBHOOK_SECRET; several, comma-separated, while one is being rotated.
    webhook_secret_file: ConfigPath | None = None
    webhook_max_age: Duration = timedelta(hours=1)  # an event that occurred longer ago is refused (a replay)


class SlackChannels(Section):
    critical: str = "#alerts-critical"
    warning: str = "#alerts"
    info: str = "#alerts-info"

    def for_severity(self, severity: Severity) -> str:
        return str(getattr(self, severity.value))


class SlackConfig(Section):
    api_url: str = "https://slack.com/api/"
    channels: SlackChannels = SlackChannels()
    runbook_approvers: list[str] = Field(default_factory=list)
    allow_self_approval: bool = False
    # Who may ack, resolve and silence from Slack (user IDs U…/W…, user-group IDs S…; ["*"]: anyone
    # in the workspace). Empty: nobody — runbook approvers may too. See docs/operations.md.
    responders: list[str] = Field(default_factory=list)
    bot_token_file: ConfigPath | None = None
    signing_secret_file: ConfigPath | None = None
    # Socket Mode's app-level token (xapp-..., scope connections:write): with one, slash commands and
    # buttons arrive over a WebSocket alertbot opens to Slack, no public endpoint needed.
    app_token_file: ConfigPath | None = None


class KubeWatchConfig(Section):
    """Record Deployment rollouts and VirtualService weight changes in these namespaces as changes."""

    namespaces: list[str] = Field(min_length=1)
    resync: Duration = timedelta(minutes=10)  # list again this often, whatever the watch said
    settle: Duration = timedelta(minutes=10)  # weights healthy this long are last-known-good
    initial_backoff: Duration = timedelta(milliseconds=500)
    max_backoff: Duration = timedelta(seconds=30)


class KubernetesConfig(Section):
    kubeconfig: ConfigPath | None = None
    watch: KubeWatchConfig | None = None  # None: no watch (POST /api/v1/events still works)
    # Where Argo CD's Applications live (alertbot/runbooks/argocd.py): a runbook reads the one that
    # syncs its target there, to refuse a change self-heal would revert.
    argocd_namespace: str = Field("argocd", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)

    @property
    def settle(self) -> timedelta:
        """How long weights must stay healthy to count as last-known-good."""
        return self.watch.settle if self.watch is not None else KubeWatchConfig.model_fields["settle"].default


class PrometheusConfig(Section):
    url: str | None = None


class RunbooksConfig(Section):
    dir: ConfigPath = Path("runbooks")
    dry_run: bool = False


class HeartbeatConfig(Section):
    alertname: str = "Watchdog"
    max_interval: Duration = timedelta(minutes=5)


class AutomationConfig(Section):
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


class SilencesConfig(Section):
    """Limits on every new silence, whether from Slack, the HTTP API or the CLI."""

    max_duration: Duration = timedelta(days=7)


class RetentionConfig(Section):
    """How long history is kept (see docs/operations.md, Retention). A background job deletes, every
    ``interval``, in small batches: incidents resolved more than ``incidents`` ago (with their
    notifications, notes and decisions), silences ended and alerts rejected as long ago; runbook runs
    and change events older than ``audit``. ``retention: null`` keeps everything."""

    incidents: Duration = timedelta(days=30)
    audit: Duration = timedelta(days=365)
    interval: Duration = timedelta(minutes=5)

    @field_validator("incidents", "audit", "interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class SecurityConfig(Section):
    """``allow_unauthenticated``: serve the webhook and the HTTP API on a non-loopback address
    without their bearer tokens (anyone who reaches the port may post alerts, silence and read).
    Off: ``alertbot serve`` refuses to start there without both tokens (docs/operations.md)."""

    allow_unauthenticated: bool = False


class OncallConfig(Section):
    """``oncall``: schedules, overrides and escalation policies (docs/oncall.md)."""

    schedules: list[Schedule] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    escalations: list[EscalationPolicy] = Field(default_factory=list)
    handoff_check: Duration = timedelta(minutes=1)  # how often replicas look for a hand-off to announce

    @field_validator("handoff_check")
    @classmethod
    def _sensible_check(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(hours=1):
            raise ValueError("between 100ms and 1h")
        return value

    @model_validator(mode="after")
    def _names_resolve(self) -> OncallConfig:
        for kind, names in (
            ("schedule", [s.name for s in self.schedules]),
            ("escalation", [e.name for e in self.escalations]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names must be unique, repeated: {', '.join(dupes)}")
        known = {s.name for s in self.schedules}
        for override in self.overrides:
            if override.schedule not in known:
                raise ValueError(f"override for unknown schedule {override.schedule!r}")
        for policy in self.escalations:
            for step in policy.steps:
                kind, _, name = step.notify.partition(":")
                if kind == "schedule" and name not in known:
                    raise ValueError(f"escalation {policy.name!r} notifies unknown schedule {name!r}")
        return self

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)

    def policy(self, name: str) -> EscalationPolicy | None:
        return next((e for e in self.escalations if e.name == name), None)


UiRole = Literal["viewer", "responder", "approver"]


class UiUser(Section):
    """``ui.users[]``: a named console user with a password hash (``alertbot ui-password``)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    password_hash: Annotated[str, AfterValidator(check_format)]
    role: UiRole = "responder"


class UiProxy(Section):
    """``ui.proxy``: the header an authenticating proxy (oauth2-proxy) sets, trusted only from
    ``trusted`` addresses; who gets which role."""

    header: str = Field("X-Forwarded-User", min_length=1, max_length=100)
    trusted: list[IPvAnyNetwork] = Field(min_length=1)
    responders: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)


class UiConfig(Section):
    """``ui``: the web console at /ui/ (docs/console.md)."""

    auth: Literal["login", "proxy"] = "login"
    users: list[UiUser] = Field(default_factory=list)
    proxy: UiProxy | None = None
    session_ttl: Duration = timedelta(hours=12)
    refresh: Duration = timedelta(seconds=10)  # how often an open page fetches what changed

    @model_validator(mode="after")
    def _proxy_configured(self) -> UiConfig:
        if self.auth == "proxy" and self.proxy is None:
            raise ValueError("auth: proxy needs ui.proxy (header, trusted)")
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("ui.users: names must be unique")
        if not timedelta(minutes=1) <= self.session_ttl <= timedelta(days=30):
            raise ValueError("session_ttl: between 1m and 30d")
        if not timedelta(seconds=1) <= self.refresh <= timedelta(minutes=10):
            raise ValueError("refresh: between 1s and 10m")
        return self
