"""The command line as a user runs it: exit codes, output, messages."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alertbot import __version__
from alertbot.domain.passwords import verify
from tests.helpers import PAYLOADS, alertbot_cli

ROOT = Path(__file__).resolve().parents[2]


run = alertbot_cli


def test_classify_prints_one_line_per_alert() -> None:
    """`alertbot classify` prints fingerprint, alertname, service, severity, reason for each alert."""
    result = run("classify", str(PAYLOADS / "am-highlatencyp95-grocery-3alerts-firing.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    first = lines[0].split("  ")
    assert first[:4] == ["50f0b7ab017c2688", "HighLatencyP95", "grocery", "warning"]
    assert "latency 3.4s > warning threshold 2s" in first[4]


def test_classify_json_uses_config_thresholds(tmp_path: Path) -> None:
    """--json gives JSON lines; --config thresholds apply (7.2 % is only a warning at a 10 % bar)."""
    config = tmp_path / "c.yaml"
    config.write_text("thresholds: {error_rate: {warning: 0.05, critical: 0.10}}\n")
    result = run(
        "classify", "--json", "--config", str(config), str(PAYLOADS / "am-higherrorrate-nutrition-service-firing.json")
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert (row["severity"], row["sli"], row["value"]) == ("warning", "error_rate", 0.072)


@pytest.mark.parametrize("content", [b"{not json", b'{"version":"4","status":"firing","alerts":[]}'])
def test_classify_bad_input_exits_2(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    result = run("classify", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}:")
    assert "Traceback" not in result.stderr


def test_classify_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("classify", str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "No such file" in result.stderr


def test_check_config_ok_and_bad(tmp_path: Path) -> None:
    """check-config: 0 for the example (with the shipped runbooks), 2 with the key path for a bad
    config, a bad runbook, or an automation naming a runbook that does not exist."""
    ok = run("check-config", str(ROOT / "config" / "alertbot.example.yaml"), cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(f": ok (6 runbooks in {ROOT / 'runbooks'})")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"runbooks: {{dir: '{ROOT / 'runbooks'}'}}\nautomations: [{{name: a, runbook: emergency-rollbak}}]\n"
    )
    typo = run("check-config", str(config))
    assert typo.returncode == 2 and "automations[0].runbook: no runbook 'emergency-rollbak'" in typo.stderr
    (tmp_path / "rb").mkdir()
    (tmp_path / "rb" / "x.yaml").write_text("name: x\nsteps: [{type: nope}]\n")
    config.write_text(f"runbooks: {{dir: '{tmp_path / 'rb'}'}}\n")
    broken = run("check-config", str(config))
    assert broken.returncode == 2 and "x.yaml:2: steps[0]" in broken.stderr
    bad = run("check-config", str(ROOT / "config" / "examples" / "inverted-thresholds.bad.yaml"))
    assert bad.returncode == 2
    assert "thresholds.latency: warning (6.0) must not be above critical (5.0)" in bad.stderr


def test_routes_test_explains_the_path(tmp_path: Path) -> None:
    """`routes test` prints the receivers, then the path through the tree."""
    result = run("routes", "test", "severity=critical", "service=nutrition-service")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "pagerduty slack"
    assert "root → routes[0] (critical)" in lines[1]
    assert run("routes", "test", "severity=info").stdout.splitlines()[0] == "slack"
    assert run("routes", "test", "oops").returncode == 2


def test_config_from_environment_variable(tmp_path: Path) -> None:
    """ALERTBOT_CONFIG names the config file when --config is absent."""
    config = tmp_path / "c.yaml"
    config.write_text("routes: {receivers: [console]}\n")
    result = run("routes", "test", "severity=critical", env={"ALERTBOT_CONFIG": str(config)})
    assert result.stdout.splitlines()[0] == "console"


def test_replay_explains_without_sending(tmp_path: Path) -> None:
    """replay prints classification, route, the PagerDuty event, the Slack message and the automations."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "automations:\n"
        "  - name: rollback-canary\n"
        "    match: {severity: critical, canary: 'true'}\n"
        "    runbook: emergency-rollback\n"
        "    params: {namespace: '{{ labels.namespace }}', virtualservice: '{{ labels.virtualservice }}'}\n"
    )
    result = run("replay", "--config", str(config), str(PAYLOADS / "am-higherrorrate-nutrition-service-firing.json"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "classification: critical — error_rate 7.2% > critical threshold 5%" in out
    assert "\\u2014" not in out  # text as it reads, not JSON escapes
    assert "route: root → routes[0] (critical)" in out
    lines = {line.split(":", 1)[0].strip(): line for line in out.splitlines() if "would " in line}
    pd_line = next(v for k, v in lines.items() if k.startswith("would send PagerDuty"))
    event = json.loads(pd_line[pd_line.index(": {") + 2 :])
    assert event["event_action"] == "trigger" and event["payload"]["class"] == "HighErrorRate"
    assert event["routing_key"] == "<ALERTBOT_PAGERDUTY_ROUTING_KEY>"
    slack_line = next(v for k, v in lines.items() if k.startswith("would send Slack #alerts-critical"))
    message = json.loads(slack_line[slack_line.index(": {") + 2 :])
    assert message["blocks"][0]["type"] == "header" and message["text"].startswith("[CRITICAL]")
    assert (
        "would start automation rollback-canary: runbook emergency-rollback (approve) params "
        '{"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"}'
    ) in out


def test_replay_decides_as_the_daemon_does(tmp_path: Path) -> None:
    """replay runs the webhook's own stages: a resolve starts no automation, a repeat sends nothing,
    and an alert the same payload inhibits is shown muted (the daemon does all three)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "automations:\n"
        "  - {name: rollback, match: {alertname: HighErrorRate}, runbook: emergency-rollback, mode: auto,\n"
        "     params: {namespace: ns, virtualservice: vs}, targets: ['ns/*']}\n"
    )
    firing = str(PAYLOADS / "am-higherrorrate-nutrition-service-firing.json")
    resolved = str(PAYLOADS / "am-higherrorrate-nutrition-service-resolved.json")
    result = run("replay", "--config", str(config), firing, firing, resolved)
    assert result.returncode == 0, result.stderr
    first, repeat, resolve = result.stdout.split("== ")[1:]
    assert "would start automation rollback: runbook emergency-rollback (auto)" in first
    assert "would send Slack #alerts-critical" in first
    assert "would do nothing: the same alert is already firing" in repeat and "would send" not in repeat
    assert "would start automation" not in resolve
    assert "would send Slack #alerts-critical" in resolve and '"event_action": "resolve"' in resolve
    as_json = run("replay", "--json", "--config", str(config), firing, resolved)
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["status"], [a["runbook"] for a in r["automations"]]) for r in rows] == [
        ("firing", ["emergency-rollback"]),
        ("resolved", []),
    ]
    assert {(n["channel"], n["event"]) for n in rows[1]["notifications"]} == {
        ("pagerduty", "resolve"),
        ("slack", "resolve"),
    }


def test_replay_shows_shadow_routes_as_recorded_not_sent(tmp_path: Path) -> None:
    """A route in shadow mode: its receivers are listed as recorded, not as sent."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "routes:\n"
        "  receivers: [slack]\n"
        "  routes:\n"
        "    - {name: new-pager, matchers: ['severity=\"critical\"'], receivers: [pagerduty], mode: shadow,"
        " continue: true}\n"
        "    - {name: critical, matchers: ['severity=\"critical\"'], receivers: [slack]}\n"
    )
    result = run("replay", "--config", str(config), str(PAYLOADS / "am-higherrorrate-nutrition-service-firing.json"))
    assert result.returncode == 0, result.stderr
    assert "recorded, not sent (shadow mode): would notify pagerduty (HighErrorRate" in result.stdout
    assert "would send PagerDuty" not in result.stdout
    assert "would send Slack #alerts-critical" in result.stdout


def test_silence_cli_round_trip(tmp_path: Path) -> None:
    """silence add / list / expire work against the configured store."""
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{url: 'sqlite:///{tmp_path}/a.db'}}\n")
    added = run(
        "silence", "add", 'service="grocery"', "--duration", "2h", "--by", "bob", "--json", "--config", str(config)
    )
    assert added.returncode == 0, added.stderr
    silence = json.loads(added.stdout)
    listed = run("silence", "list", "--json", "--config", str(config))
    assert [json.loads(x)["id"] for x in listed.stdout.splitlines()] == [silence["id"]]
    # Without --json: one line a person reads — id, matchers, until when, who, why.
    readable = run("silence", "add", "team=payments", "-d", "30m", "--by=eve", "--comment=db down", "-c", str(config))
    (line,) = readable.stdout.splitlines()
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert re.fullmatch(rf'\d+  team="payments"  until {when}  by eve — db down', line), line
    assert run("silence", "list", "--config", str(config)).stdout.splitlines()[0] == line
    assert run("silence", "expire", line.split()[0], "--config", str(config)).returncode == 0
    assert run("silence", "expire", str(silence["id"]), "--config", str(config)).returncode == 0
    assert run("silence", "list", "--config", str(config)).stdout == ""
    again = run("silence", "expire", str(silence["id"]), "--config", str(config))
    assert again.returncode == 2 and "no active silence" in again.stderr
    assert run("silence", "add", "bad matcher", "--config", str(config)).returncode == 2


def test_console_script_is_installed() -> None:
    """The package installs an `alertbot` console script."""
    script = Path(sys.executable).parent / "alertbot"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "serve" in result.stdout


def test_policy_tests_pass_for_the_shipped_config() -> None:
    """`alertbot test` on config/policy-tests/seed.yaml passes with its config (the project's own policy)."""
    result = run(
        "test", str(ROOT / "config/policy-tests/seed.yaml"), "--config", str(ROOT / "config/policy-tests/alertbot.yaml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("6 passed, 0 failed")


def test_policy_test_mismatch_exits_1_and_says_why(tmp_path: Path) -> None:
    """A routing change that breaks an expectation fails the run, naming the alert and both values."""
    config = tmp_path / "c.yaml"
    config.write_text("thresholds: {error_rate: {warning: 0.05, critical: 0.10}}\n")
    tests = tmp_path / "t.yaml"
    payload = PAYLOADS / "am-higherrorrate-nutrition-service-firing.json"
    tests.write_text(
        f"tests:\n  - name: canary pages\n    payload: {payload}\n"
        "    expect: {severity: critical, receivers: [pagerduty, slack]}\n"
    )
    result = run("test", str(tests), "--config", str(config))
    assert result.returncode == 1
    assert "FAIL canary pages" in result.stdout
    assert "severity warning, expected critical" in result.stdout and "receivers ['slack']" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("tests: [{name: x, payload: y.json, expect: {severity: urgent}}]\n")
    assert run("test", str(bad)).returncode == 2


def test_check_config_refuses_automations_the_daemon_would_fail(tmp_path: Path) -> None:
    """check-config checks an automation's params against its runbook as a run would: an unknown
    param, or a required one it does not give, exits 2 with the key path; a runbooks.dir that does
    not exist is an error, not "0 runbooks"."""
    config = tmp_path / "c.yaml"
    automation = {
        "name": "rollback",
        "runbook": "emergency-rollback",
        "targets": ["ai-nutritionist/*"],
        "params": {"namespace": "{{ labels.namespace }}", "virtualservice": "{{ labels.virtualservice }}"},
    }
    good = {"runbooks": {"dir": str(ROOT / "runbooks")}, "automations": [automation]}
    config.write_text(json.dumps(good))
    assert run("check-config", str(config)).returncode == 0

    unknown = {**automation, "params": {**automation["params"], "virtual_service": "x"}}  # type: ignore[dict-item]
    config.write_text(json.dumps({**good, "automations": [unknown]}))
    result = run("check-config", str(config))
    assert result.returncode == 2, result.stdout
    assert "automations[0].params: unknown param virtual_service" in result.stderr

    missing = {**automation, "params": {"namespace": "ai-nutritionist"}}
    config.write_text(json.dumps({**good, "automations": [missing]}))
    result = run("check-config", str(config))
    assert result.returncode == 2, result.stdout
    assert "automations[0].params: param virtualservice is required" in result.stderr

    config.write_text(json.dumps({"runbooks": {"dir": str(tmp_path / "nonexistent")}}))
    result = run("check-config", str(config))
    assert result.returncode == 2, result.stdout
    assert f"runbooks.dir: {tmp_path / 'nonexistent'} is not a directory" in result.stderr


def test_version_and_a_taken_port_are_reported_plainly(tmp_path: Path) -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"alertbot {__version__}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(json.dumps({"server": {"port": port}, "storage": {"url": f"sqlite:///{tmp_path}/a.db"}}))
        result = run("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr


def test_the_cli_finds_the_daemons_store_from_any_directory(tmp_path: Path) -> None:
    """A relative storage path in the config is the daemon's database wherever the CLI is run from;
    without one, the CLI refuses to make a new, empty database in the current directory."""
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    config = etc / "alertbot.yaml"
    config.write_text("storage: {url: 'sqlite:///alertbot.db'}\n")
    added = run("silence", "add", 'service="grocery"', "-d", "1h", "--json", "--config", str(config), cwd=etc)
    assert added.returncode == 0, added.stderr
    listed = run("silence", "list", "--json", "--config", str(config), cwd=elsewhere)
    assert [json.loads(x)["id"] for x in listed.stdout.splitlines()] == [json.loads(added.stdout)["id"]]

    stray = run("silence", "add", 'service="grocery"', "-d", "1h", cwd=elsewhere)
    assert stray.returncode == 2
    assert f"no alertbot database at {elsewhere}/var/alertbot.db" in stray.stderr
    assert list(elsewhere.iterdir()) == []


def test_slack_manifest_for_socket_mode_and_for_https() -> None:
    """`alertbot slack manifest`: Socket Mode by default (no URL anywhere); --no-socket-mode needs
    --url and points the command and the buttons at alertbot's two Slack endpoints."""
    from alertbot.slack.commands import VERBS  # noqa: PLC0415 (the verbs the usage hint must name)

    socket = yaml.safe_load(run("slack", "manifest").stdout)
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "url" not in socket["features"]["slash_commands"][0]
    assert socket["settings"]["interactivity"] == {"is_enabled": True}
    assert {"chat:write", "commands"} <= set(socket["oauth_config"]["scopes"]["bot"])
    hint = socket["features"]["slash_commands"][0]["usage_hint"]
    assert [verb for verb in VERBS if verb not in hint] == []

    assert run("slack", "manifest", "--no-socket-mode").returncode == 2
    https = json.loads(
        run("slack", "manifest", "--no-socket-mode", "--url", "https://ab.example.com/", "--json").stdout
    )
    assert https["settings"]["socket_mode_enabled"] is False
    assert https["features"]["slash_commands"][0]["url"] == "https://ab.example.com/slack/commands"
    assert https["settings"]["interactivity"]["request_url"] == "https://ab.example.com/slack/interactions"


def test_shell_completion_completes_commands() -> None:
    """`--show-completion` (run from bash: it names the shell it is run from) prints the script; the
    script's protocol completes `alertbot sil`."""
    script = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m alertbot --show-completion; exit $?"],  # not exec: bash stays its parent
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0 and "_alertbot_completion" in script.stdout, script.stderr
    env = {"_ALERTBOT_COMPLETE": "complete_bash", "COMP_WORDS": "alertbot sil", "COMP_CWORD": "1"}
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "alertbot")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert completed.stdout.split() == ["silence"]


def test_routes_test_and_runbook_list_speak_json() -> None:
    routed = json.loads(run("routes", "test", "severity=critical", "--json").stdout)
    assert routed["receivers"] == ["pagerduty", "slack"] and routed["matches"][0]["path"][0] == "root"
    listed = run("runbook", "list", "--json", "--config", str(ROOT / "config" / "alertbot.example.yaml"), cwd=ROOT)
    runbooks = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert runbooks["emergency-rollback"]["risk"] == "low"
    assert [p["name"] for p in runbooks["emergency-rollback"]["params"]][:2] == ["namespace", "virtualservice"]


def test_routes_test_names_the_escalation_and_check_config_an_unknown_one(tmp_path: Path) -> None:
    config = tmp_path / "oncall.yaml"
    policy = {"name": "critical", "steps": [{"notify": "user:U0CCC"}]}
    route = {"matchers": ['severity="critical"'], "receivers": ["slack"], "escalation": "critical"}
    config.write_text(
        json.dumps({"oncall": {"escalations": [policy]}, "routes": {"receivers": ["slack"], "routes": [route]}})
    )
    text = run("routes", "test", "severity=critical", "--config", str(config)).stdout
    assert text.splitlines()[-1] == "  escalation: critical (until acknowledged)"
    routed = json.loads(run("routes", "test", "severity=critical", "--json", "--config", str(config)).stdout)
    assert routed["escalation"] == "critical" and routed["matches"][0]["escalation"] == "critical"
    quiet = {"start": "19:00", "end": "08:00", "timezone": "Europe/Berlin", "days": ["sat", "sun"]}
    config.write_text(json.dumps({"routes": {"receivers": ["slack"], "quiet_hours": quiet}}))
    text = run("routes", "test", "severity=warning", "--config", str(config)).stdout
    quiet_line = "  quiet hours: 19:00 to 08:00 and all sat, sun Europe/Berlin (info and warning wait)"
    assert text.splitlines()[-1] == quiet_line
    routed = json.loads(run("routes", "test", "severity=warning", "--json", "--config", str(config)).stdout)
    assert routed["quiet_hours"] == {**quiet, "start": "19:00:00", "end": "08:00:00"}
    config.write_text(
        json.dumps({"oncall": {"escalations": [policy]}, "routes": {"receivers": ["slack"], "routes": [route]}})
    )
    config.write_text(config.read_text().replace('"escalation": "critical"}', '"escalation": "critcal"}'))
    refused = run("check-config", str(config))
    assert refused.returncode == 2 and "escalation 'critcal' is not a policy in oncall.escalations" in refused.stderr


def test_check_config_and_policy_tests_speak_json(tmp_path: Path) -> None:
    ok = run("check-config", "--json", str(ROOT / "config" / "alertbot.example.yaml"), cwd=ROOT)
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["ok"] is True and "emergency-rollback" in report["runbooks"]
    bad = tmp_path / "c.yaml"
    bad.write_text("sotrage: {}\n")
    refused = run("check-config", "--json", str(bad))
    assert refused.returncode == 2
    assert json.loads(refused.stdout) == {
        "file": str(bad),
        "ok": False,
        "error": f"{bad}:1: sotrage: unknown key (did you mean 'storage'?)",
    }
    tests = ROOT / "config" / "policy-tests"
    outcome = run("test", "--json", str(tests / "seed.yaml"), "--config", str(tests / "alertbot.yaml"))
    rows = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert outcome.returncode == 0 and rows and all(r["passed"] and r["failures"] == [] for r in rows)


def test_flags_take_no_value_in_help() -> None:
    """`--help` shows `--json`, `--force`, `--execute` as flags, not as options taking a <bool>."""
    for command in (["decisions"], ["silence", "add"], ["runbook", "run"], ["replay"]):
        shown = run(*command, "--help", env={"COLUMNS": "200"}).stdout
        flags = [line for line in shown.splitlines() if any(f in line for f in ("--json", "--force", "--execute"))]
        assert flags and not [line for line in flags if "<bool>" in line], (command, flags)


def test_ui_password_prints_a_hash_the_console_accepts_and_never_the_password() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "alertbot", "ui-password"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0 and "correct horse" not in made.stdout + made.stderr
    digest = made.stdout.strip()
    assert verify("correct horse battery", digest) and not verify("correct horse", digest)
    short = subprocess.run(
        [sys.executable, "-m", "alertbot", "ui-password"], input="short\n", capture_output=True, text=True, check=False
    )
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
