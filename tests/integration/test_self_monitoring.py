"""alertbot watches itself: its build, firing incidents, the age of the outbox backlog, the last
Watchdog, readiness and the last reload are metrics; the shipped Prometheus rules
(deploy/prometheus/alertbot-rules.yaml, checked and unit-tested with the real ``promtool``) and
Grafana dashboard (deploy/grafana/alertbot.json) use only metrics alertbot exports."""

from __future__ import annotations

import json
import platform
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from alertbot import __version__
from tests.conftest import ROOT, MakeHarness
from tests.e2e.procs import real_binary
from tests.fakes.notifiers import ScriptedNotifier
from tests.helpers import wait_until
from tests.integration.test_heartbeat import WATCHDOG

RULES = ROOT / "deploy/prometheus/alertbot-rules.yaml"
RULES_TESTS = ROOT / "deploy/prometheus/alertbot-rules.test.yaml"
DASHBOARD = ROOT / "deploy/grafana/alertbot.json"
FIRING = "am-higherrorrate-nutrition-service-firing.json"  # critical


def sample(text: str, series: str) -> float | None:
    """The value of one exposed series (name with its labels, as printed), or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_show_build_firing_incidents_backlog_age_watchdog_and_readiness(
    make_harness: MakeHarness,
) -> None:
    clock = {"now": datetime(2026, 12, 2, 2, 0, tzinfo=UTC)}
    held = ScriptedNotifier()
    held.blocked.clear()  # the console sender holds its notification: the row stays pending
    h = await make_harness(
        {"heartbeat": {"alertname": "Watchdog", "max_interval": "5m"}},
        notifiers={"console": held},
        clock=lambda: clock["now"],
    )
    assert (await h.post_payload(json.dumps(WATCHDOG))).status == 200
    assert (await h.post_file(FIRING)).status == 200
    clock["now"] += timedelta(seconds=120)

    text = await (await h.client.get("/metrics")).text()
    build = f'alertbot_build_info{{python="{platform.python_version()}",version="{__version__}"}}'
    assert sample(text, build) == 1.0, text
    assert sample(text, 'alertbot_incidents_firing{severity="critical"}') == 1.0
    assert sample(text, 'alertbot_incidents_firing{severity="warning"}') == 0.0
    assert sample(text, 'alertbot_outbox_oldest_pending_age_seconds{channel="console"}') == 120.0
    assert (
        sample(text, "alertbot_watchdog_last_seen_timestamp_seconds")
        == datetime(2026, 12, 2, 2, 0, tzinfo=UTC).timestamp()
    )
    assert sample(text, "alertbot_ready") == 1.0

    held.blocked.set()
    await wait_until(lambda: len(held.delivered) == 1, what="the held notification delivered")

    async def backlog_gone() -> bool:
        text = await (await h.client.get("/metrics")).text()
        return sample(text, 'alertbot_outbox_oldest_pending_age_seconds{channel="console"}') == 0.0

    await wait_until(backlog_gone, what="no backlog once delivered")


def promtool() -> str:
    return real_binary("promtool", package="prometheus")


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    """``promtool check rules`` accepts the file, and ``promtool test rules`` shows each alert firing
    on the series that should fire it, and not on healthy ones."""
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULES_TESTS)]):
        done = subprocess.run([promtool(), *command], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


# Grafana's variables, given values so that each panel's query is plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$job": "alertbot", "$instance": ".*"}


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel's query (variables filled in) parses: promtool checks it as a recording rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 10
    rules = []
    for i, query in enumerate(queries):
        plain = query
        for variable, value in GRAFANA_VARIABLES.items():
            plain = plain.replace(variable, value)
        assert "$" not in plain, plain
        rules.append({"record": f"dashboard:query_{i}", "expr": plain})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_rules_and_dashboard_use_only_metrics_alertbot_exports(make_harness: MakeHarness) -> None:
    h = await make_harness({"heartbeat": {"alertname": "Watchdog", "max_interval": "5m"}})
    assert (await h.post_payload(json.dumps(WATCHDOG))).status == 200
    text = await (await h.client.get("/metrics")).text()
    exported = set()
    for family in re.findall(r"^# TYPE (alertbot_\w+) (\w+)$", text, flags=re.MULTILINE):
        name, kind = family
        exported.add(name)
        if kind == "counter":
            exported.add(name + "_total" if not name.endswith("_total") else name)
        if kind == "histogram":
            exported |= {name + "_bucket", name + "_count", name + "_sum"}
    used = set(re.findall(r"\balertbot_\w+", RULES.read_text() + DASHBOARD.read_text()))
    used = {u for u in used if not u.startswith("alertbot_rules")}  # the rule group's own name
    assert used, "no metric found in the rules or the dashboard"
    assert used <= exported, sorted(used - exported)
