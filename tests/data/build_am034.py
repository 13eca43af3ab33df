"""Writes payloads/am034-*.json from the Alertmanager 0.25 captures: see README.md. Run from the repo root."""

import json
from pathlib import Path

PAYLOADS = Path("tests/data/payloads")
# template.Data's fields, then webhook.Message's: the order Go's encoder writes them.
ORDER = [
    "receiver",
    "status",
    "alerts",
    "notification_reason",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "routeLabels",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
]
ROUTE_LABELS = {"escalation": "critical", "team": "nutrition"}  # Go writes map keys sorted
BUILT = [
    ("firing", "firing", "first notification"),
    ("firing", "repeat", "repeat interval elapsed"),
    ("resolved", "resolved", "all alerts resolved"),
]

for source, target, reason in BUILT:
    data = json.loads((PAYLOADS / f"am-higherrorrate-nutrition-service-{source}.json").read_text())
    data["notification_reason"] = reason
    data["routeLabels"] = ROUTE_LABELS
    body = json.dumps({k: data[k] for k in ORDER}, separators=(",", ":"), ensure_ascii=False) + "\n"
    (PAYLOADS / f"am034-higherrorrate-nutrition-service-{target}.json").write_text(body)
