"""The PagerDuty event builder, checked against the official Events API v2 OpenAPI schema."""

from __future__ import annotations

import jsonschema
import pytest

from alertbot.notify.base import Event, StormSummary
from alertbot.notify.pagerduty import build_event, dedup_key
from tests.fakes.pagerduty import ENQUEUE_SCHEMA
from tests.helpers import all_payload_names, notifications

KEY = "R0UT1NGKEYfake0000000000000000001"


@pytest.mark.parametrize("name", all_payload_names())
@pytest.mark.parametrize("event", ["trigger", "resolve"])
def test_every_event_is_schema_valid(name: str, event: Event) -> None:
    """For every captured alert, trigger and resolve bodies validate against PagerDuty's schema."""
    for notification in notifications(name, event):
        body = build_event(notification, KEY)
        jsonschema.validate(body, ENQUEUE_SCHEMA)
        assert body["event_action"] == event and len(body["dedup_key"]) <= 255


def test_trigger_carries_the_contract_fields() -> None:
    (n,) = notifications("am-servicedown-recipe-service-firing.json")
    payload = build_event(n, KEY)["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "ai-nutritionist/recipe-service"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "recipe-service",
        "ai-nutritionist",
        "ServiceDown",
    )
    assert payload["custom_details"]["reason"].startswith("service down: recipe-service")


def test_dedup_key_is_stable_per_episode_and_shared_by_resolve() -> None:
    """Trigger and resolve of one episode share the key; it does not change between calls."""
    (trigger,) = notifications("am-higherrorrate-nutrition-service-firing.json")
    (resolve,) = notifications("am-higherrorrate-nutrition-service-resolved.json", "resolve")
    assert dedup_key(trigger) == dedup_key(resolve) == dedup_key(trigger)
    assert dedup_key(trigger) == "alertbot/b7879370733ab294/1795982093462"


def test_storm_uses_one_key_per_group() -> None:
    """Every summary of a group's storm shares one dedup key, whichever alert anchors it."""
    a, b, _ = notifications("am-highlatencyp95-grocery-3alerts-firing.json")
    storm = StormSummary(
        group_key='{}:{service="grocery"}', group_labels={"service": "grocery"}, count=12, firing=12, sample=["x"]
    )
    sa, sb = a.model_copy(update={"storm": storm}), b.model_copy(update={"storm": storm})
    assert dedup_key(sa) == dedup_key(sb) != dedup_key(a)
    body = build_event(sa, KEY)
    jsonschema.validate(body, ENQUEUE_SCHEMA)
    assert body["payload"]["summary"].startswith("[STORM] 12 alerts in group service=grocery (12 firing)")
