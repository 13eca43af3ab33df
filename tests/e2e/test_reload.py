"""Reload without downtime: SIGHUP and ``POST /-/reload`` re-read the config file and the runbooks,
as Alertmanager and Prometheus do. A config that does not validate, or that changes what only a
restart can (the store, the listener), is refused with the reason, and the old one stays in force."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.procs import AlertbotProcess, http, poll

TOKEN = "reload-test-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG: dict[str, Any] = {"routes": {"receivers": ["console"]}, "silences": {"max_duration": "7d"}}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[AlertbotProcess]:
    proc = AlertbotProcess(tmp_path / "a", CONFIG, {"ALERTBOT_API_TOKEN": TOKEN})
    try:
        yield proc.start()
    finally:
        proc.close()


def silence_for(daemon: AlertbotProcess, duration: str) -> int:
    body = {"matchers": ['service="checkout"'], "duration": duration, "created_by": "ops", "comment": "reload test"}
    status, _ = http("POST", f"{daemon.url}/api/v1/silences", body, AUTH)
    return status


def metric(daemon: AlertbotProcess, name: str) -> float | None:
    _, text = http("GET", f"{daemon.url}/metrics")
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def write_config(daemon: AlertbotProcess, config: dict[str, Any]) -> None:
    daemon.config_path.write_text(yaml.safe_dump(config))


def test_sighup_reloads_instead_of_killing(daemon: AlertbotProcess) -> None:
    """Edit the file, send SIGHUP: the daemon keeps serving, and the new limit is in force."""
    assert silence_for(daemon, "2h") == 201
    write_config(daemon, {**CONFIG, "silences": {"max_duration": "1h"}})
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    poll(lambda: '"config_reloaded"' in daemon.stderr(), within=10, what="config_reloaded in the log")
    assert daemon.proc.poll() is None
    assert http("GET", f"{daemon.url}/healthz")[0] == 200
    assert silence_for(daemon, "2h") == 400
    assert silence_for(daemon, "30m") == 201
    assert metric(daemon, "alertbot_config_last_reload_successful") == 1.0


def test_post_reload_refuses_a_bad_config_and_keeps_the_old_one(daemon: AlertbotProcess) -> None:
    url = f"{daemon.url}/-/reload"
    assert http("POST", url)[0] == 401  # the API token is required
    before = metric(daemon, "alertbot_config_last_reload_success_timestamp_seconds")
    assert before is not None and before > 0

    write_config(daemon, {**CONFIG, "silences": {"max_duration": "1h"}})
    status, body = http("POST", url, None, AUTH)
    assert status == 200, body
    assert silence_for(daemon, "2h") == 400

    write_config(daemon, {**CONFIG, "silences": {"max_durration": "1d"}})  # misspelt: does not validate
    status, body = http("POST", url, None, AUTH)
    assert status == 400 and "max_durration" in body["error"]["message"], body
    assert metric(daemon, "alertbot_config_last_reload_successful") == 0.0
    assert silence_for(daemon, "2h") == 400  # the 1 h limit still holds
    assert silence_for(daemon, "30m") == 201

    write_config(daemon, {**CONFIG, "storage": {"url": "sqlite:///elsewhere.db"}})
    status, body = http("POST", url, None, AUTH)
    assert status == 400 and "storage" in body["error"]["message"] and "restart" in body["error"]["message"], body
    assert '"config_reload_failed"' in daemon.stderr()

    write_config(daemon, CONFIG)
    assert http("POST", url, None, AUTH)[0] == 200
    assert metric(daemon, "alertbot_config_last_reload_successful") == 1.0
    assert silence_for(daemon, "2h") == 201
    after = metric(daemon, "alertbot_config_last_reload_success_timestamp_seconds")
    assert after is not None and after >= before


def test_an_edited_config_is_reloaded_when_watched(tmp_path: Path) -> None:
    """`server.watch_config`: a ConfigMap edit that reaches the mounted file is applied without a
    signal; an edit that does not validate is refused and the running config stays."""
    config = {**CONFIG, "server": {"watch_config": "1s"}}
    proc = AlertbotProcess(tmp_path / "w", config, {"ALERTBOT_API_TOKEN": TOKEN}).start()
    try:
        assert silence_for(proc, "2h") == 201
        write_config(proc, {**config, "silences": {"max_duration": "1h"}})
        poll(lambda: '"by": "watch"' in proc.stderr(), within=15, what="a reload by the watcher")
        assert '"config_reloaded"' in proc.stderr()
        assert silence_for(proc, "2h") == 400

        write_config(proc, {**config, "silences": {"max_duration": "forever"}})
        poll(lambda: '"config_reload_failed"' in proc.stderr(), within=15, what="the bad edit refused")
        assert metric(proc, "alertbot_config_last_reload_successful") == 0.0
        assert silence_for(proc, "30m") == 201 and silence_for(proc, "2h") == 400  # the last good config
        assert proc.proc is not None and proc.proc.poll() is None
    finally:
        proc.close()
