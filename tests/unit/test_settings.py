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
