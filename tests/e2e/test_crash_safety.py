"""Crash safety: `kill -9` alertbot at random moments while a real Alertmanager streams alerts to it and
PagerDuty is slow; after the last restart every alert has paged PagerDuty — none lost, none paged as
two incidents.

The outbox delivers at least once: a kill after PagerDuty accepted an event but before alertbot
recorded it means that event is sent again after the restart. PagerDuty folds repeats with the same
dedup key into the one incident, which is what on-call sees; the test counts incidents (distinct
dedup keys) and bounds the repeats by the sends in flight at each kill.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import PD_KEY
from tests.e2e.procs import AlertbotProcess, AlertmanagerProcess, alertmanager_binary, am_alert, free_port, poll
from tests.e2e.threaded import ThreadedServer
from tests.fakes.pagerduty import FakePagerDuty

pytestmark = pytest.mark.e2e
ALERTS = 60
KILLS = 4
SEND_BATCH = 64  # the dispatcher's claim: its outcomes are recorded together, so a kill may repeat them all


@pytest.fixture
def slow_pagerduty() -> Iterator[tuple[FakePagerDuty, ThreadedServer]]:
    pagerduty = FakePagerDuty(PD_KEY)
    pagerduty.latency = 0.15  # every event takes 150 ms: kills land mid-send
    server = ThreadedServer(pagerduty.app)
    yield pagerduty, server
    server.close()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_kill_9_at_random_points_pages_every_alert_once(
    store: str, tmp_path: Path, request: pytest.FixtureRequest, slow_pagerduty: tuple[FakePagerDuty, ThreadedServer]
) -> None:
    alertmanager_binary()
    pagerduty, pd_server = slow_pagerduty
    url = (
        f"sqlite:///{tmp_path}/ab/ab.db"
        if store == "sqlite"
        else request.getfixturevalue("postgres_server").new_database()
    )
    config = {
        "storage": {"url": url},
        "pagerduty": {"events_url": pd_server.url("/v2/enqueue")},
        "routes": {"receivers": ["pagerduty"]},
        "storm": None,
        "outbox": {"initial_backoff": "100ms", "max_backoff": "1s", "poll_interval": "200ms", "send_timeout": "1s"},
    }  # a dead process's leases lapse after 4 rounds of 1 s + 10 s
    alertbot = AlertbotProcess(
        tmp_path / "ab", config, env={"ALERTBOT_PAGERDUTY_ROUTING_KEY": PD_KEY}, port=free_port()
    )
    alertbot.start()
    am = AlertmanagerProcess(tmp_path / "am", f"{alertbot.url}/webhook/alertmanager")
    rng = random.Random(7)
    try:
        starts = datetime.now(UTC) - timedelta(seconds=5)
        services = [f"svc-{i:03d}" for i in range(ALERTS)]
        batches = [services[i :: KILLS + 1] for i in range(KILLS + 1)]
        for batch in batches[:-1]:
            am.post([_alert(s, starts) for s in batch])
            time.sleep(rng.uniform(0.3, 1.5))  # somewhere in the middle of delivering them
            alertbot.stop(signal.SIGKILL)
            alertbot.start()
        am.post([_alert(s, starts) for s in batches[-1]])

        poll(lambda: len(pagerduty.incidents()) == ALERTS, within=120, what=f"{ALERTS} PagerDuty incidents")
        incidents = pagerduty.incidents()
        wanted = {e["payload"]["component"] for e in pagerduty.triggers()}
        assert wanted == set(services)  # every alert paged, nothing else
        repeats = sum(n - 1 for n in incidents.values())
        assert repeats <= KILLS * SEND_BATCH  # at most the sends in flight at each kill
    finally:
        am.close()
        alertbot.close()


def _alert(service: str, starts: datetime) -> dict[str, object]:
    return am_alert(
        {"alertname": "ServiceDown", "service": service, "namespace": "ai-nutritionist"},
        {"summary": f"{service} is down"},
        starts_at=starts,
    )
