"""Configuration: the example documents every key, bad files name the key path, secrets stay secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from alertbot.errors import ConfigError
from alertbot.settings import Config, load_config, load_secrets

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"


def test_example_config_is_valid_and_equals_the_defaults() -> None:
    """config/alertbot.example.yaml validates, and what it shows is exactly the embedded default."""
    assert load_config(ROOT / "config" / "alertbot.example.yaml") == Config()


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        out.add(prefix + key)
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and prefix.count(".") < 2:
                out |= _keys(candidate, f"{prefix}{key}.")
    return out


def test_example_config_mentions_every_key() -> None:
    """Every top-level and section key of Config appears in the example file."""
    text = (ROOT / "config" / "alertbot.example.yaml").read_text()
    missing = [key for key in _keys(Config) if not re.search(rf"\b{re.escape(key.split('.')[-1])}\b", text)]
    assert missing == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.bad.yaml")), ids=lambda p: p.name)
def test_bad_examples_are_rejected_naming_the_key(path: Path) -> None:
    """Each config/examples/*.bad.yaml fails with the message its `# expect:` line gives."""
    expect = re.search(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)
    assert expect, f"{path.name} has no '# expect:' line"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expect.group(1) in info.value.message


@pytest.mark.parametrize(
    "path", sorted(set(EXAMPLES.glob("*.yaml")) - set(EXAMPLES.glob("*.bad.yaml"))), ids=lambda p: p.name
)
def test_good_examples_load(path: Path) -> None:
    """The other examples are valid."""
    load_config(path)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """Broken YAML is reported with the file and line."""
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"c.yaml: invalid YAML at line \d+"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_secrets_from_env_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Env gives secrets; a *_file key wins over the env; repr never shows a value."""
    monkeypatch.setenv("ALERTBOT_WEBHOOK_TOKEN", "env-webhook-token")
    monkeypatch.setenv("ALERTBOT_SLACK_BOT_TOKEN", "xoxb-from-env")
    token_file = tmp_path / "slack-token"
    token_file.write_text("xoxb-from-file\n")
    config = Config.model_validate({"slack": {"bot_token_file": str(token_file)}})
    secrets = load_secrets(config)
    assert secrets.webhook_token is not None and secrets.webhook_token.get_secret_value() == "env-webhook-token"
    assert secrets.slack_bot_token is not None and secrets.slack_bot_token.get_secret_value() == "xoxb-from-file"
    assert "env-webhook-token" not in repr(secrets) and "xoxb" not in str(secrets)
    assert set(secrets.values()) == {"env-webhook-token", "xoxb-from-file"}


def test_unreadable_secret_file_names_the_key(tmp_path: Path) -> None:
    config = Config.model_validate({"pagerduty": {"routing_key_file": str(tmp_path / "missing")}})
    with pytest.raises(ConfigError, match=r"pagerduty.routing_key_file: cannot read secret file"):
        load_secrets(config)


def test_example_yaml_is_plain_yaml() -> None:
    """The example parses as YAML on its own (no templating)."""
    assert isinstance(yaml.safe_load((ROOT / "config" / "alertbot.example.yaml").read_text()), dict)


def test_named_pagerduty_keys_from_env_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ALERTBOT_PAGERDUTY_ROUTING_KEY_<NAME> and pagerduty.routing_key_files give per-route keys; all redacted."""
    monkeypatch.setenv("ALERTBOT_PAGERDUTY_ROUTING_KEY_PAYMENTS_ONCALL", "key-from-env")
    key_file = tmp_path / "search"
    key_file.write_text("key-from-file\n")
    config = Config.model_validate({"pagerduty": {"routing_key_files": {"search": str(key_file)}}})
    secrets = load_secrets(config)
    assert {k: v.get_secret_value() for k, v in secrets.pagerduty_routing_keys.items()} == {
        "payments_oncall": "key-from-env",
        "search": "key-from-file",
    }
    assert "key-from-env" in secrets.values() and "key-from-file" not in repr(secrets)


def test_relative_paths_resolve_against_the_config_files_directory(tmp_path: Path) -> None:
    """A relative path written in a config file means the same file whatever the working directory:
    it is read against the config file's directory (the daemon and the CLI agree)."""
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "alertbot.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": {"url": "sqlite:///var/alertbot.db", "url_file": "secrets/db-url"},
                "webhook": {"token_file": "secrets/webhook"},
                "api": {"token_file": "/abs/api-token"},
                "pagerduty": {"routing_key_file": "pd", "routing_key_files": {"search": "keys/search"}},
                "slack": {"bot_token_file": "../slack/bot"},
                "kubernetes": {"kubeconfig": "kube/config"},
                "runbooks": {"dir": "runbooks"},
            }
        )
    )
    config = load_config(conf_dir / "alertbot.yaml")
    assert config.storage.url == f"sqlite:///{conf_dir}/var/alertbot.db"
    assert config.storage.url_file == conf_dir / "secrets/db-url"
    assert config.webhook.token_file == conf_dir / "secrets/webhook"
    assert config.api.token_file == Path("/abs/api-token")
    assert config.pagerduty.routing_key_file == conf_dir / "pd"
    assert config.pagerduty.routing_key_files == {"search": conf_dir / "keys/search"}
    assert config.slack.bot_token_file == conf_dir / "../slack/bot"
    assert config.kubernetes.kubeconfig == conf_dir / "kube/config"
    assert config.runbooks.dir == conf_dir / "runbooks"


def test_keys_left_out_keep_their_defaults_relative_to_the_working_directory(tmp_path: Path) -> None:
    """Defaults are not paths written in the file: they stay as documented (the image's working directory)."""
    (tmp_path / "alertbot.yaml").write_text("mode: live\n")
    config = load_config(tmp_path / "alertbot.yaml")
    assert config.storage.url == "sqlite:///var/alertbot.db" and config.runbooks.dir == Path("runbooks")
    assert config.storage.url_file is None


def test_an_in_memory_database_url_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "alertbot.yaml").write_text("storage: {url: 'sqlite:///:memory:'}\n")
    assert load_config(tmp_path / "alertbot.yaml").storage.url == "sqlite:///:memory:"


def test_one_threshold_alone_overrides_only_itself() -> None:
    """Every key is optional: `thresholds.error_rate.warning` alone keeps the default critical."""
    config = Config.model_validate({"thresholds": {"error_rate": {"warning": 0.02}, "latency": {"critical": 9}}})
    assert (config.thresholds.error_rate.warning, config.thresholds.error_rate.critical) == (0.02, 0.05)
    assert (config.thresholds.latency.warning, config.thresholds.latency.critical) == (2.0, 9.0)


def test_a_partial_threshold_above_the_default_critical_says_so(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("thresholds:\n  error_rate:\n    warning: 0.07\n")
    with pytest.raises(
        ConfigError, match=r"thresholds.error_rate: warning \(0.07\) must not be above critical \(0.05\)"
    ):
        load_config(tmp_path / "c.yaml")


def test_a_list_where_a_mapping_belongs_is_named_plainly(tmp_path: Path) -> None:
    """`routes:` given a list says what is expected, not the name of an internal class."""
    (tmp_path / "c.yaml").write_text("routes:\n  - receivers: [slack]\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml")
    assert "RouteNode" not in info.value.message
    assert "routes: must be a mapping of keys, got a list" in info.value.message


def test_config_errors_name_the_file_line_and_a_close_key(tmp_path: Path) -> None:
    """A misspelt key: file, line and the key it was probably meant to be."""
    (tmp_path / "c.yaml").write_text("mode: live\nthresholds:\n  error_rate:\n    warning: 0.01\n    critcal: 0.05\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml")
    assert info.value.message == (
        f"{tmp_path / 'c.yaml'}:5: thresholds.error_rate.critcal: unknown key (did you mean 'critical'?)"
    )


def test_a_bad_value_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("server:\n  host: 0.0.0.0\n  port: 99999\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml")
    assert info.value.message.startswith(f"{tmp_path / 'c.yaml'}:3: server.port: ")


def test_an_unknown_top_level_key_suggests_the_section(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("sotrage: {url: 'sqlite:///x.db'}\n")
    with pytest.raises(ConfigError, match=r":1: sotrage: unknown key \(did you mean 'storage'\?\)"):
        load_config(tmp_path / "c.yaml")
