"""Fuzzing the HTTP surface with hypothesis: whatever arrives at the webhook or the Slack endpoints,
alertbot answers with a deliberate status (never a 500), keeps running, and logs no internal error.

The app runs for real (store, pipeline, dispatcher) on a background thread so that hypothesis can
drive it with plain blocking requests and shrink any failure to a minimal body.
"""

from __future__ import annotations

import copy
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alertbot.settings import parse_config
from alertbot.slack.verify import sign
from alertbot.web.app import create_app
from tests.conftest import secrets
from tests.e2e.procs import http
from tests.e2e.threaded import ThreadedServer
from tests.helpers import all_payload_names, payload_json
from tests.slack_client import SECRET

WEBHOOK_STATUSES = {200, 400, 413, 415}
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)  # what an HTTP header value may hold
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
PAYLOADS = [payload_json(name) for name in all_payload_names() if name.endswith(".json") and "manifest" not in name]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = parse_config(
        {
            "storage": {"url": f"sqlite:///{root}/fuzz.db"},
            "runbooks": {"dir": str(root)},
            "webhook": {"max_body_bytes": 65536, "max_value_bytes": 1024},
        }
    )
    app = create_app(config, secrets(slack_signing_secret=SECRET), console_stream=io.StringIO())
    running = ThreadedServer(app)
    yield running
    running.close()


def post(server: ThreadedServer, path: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(server.url(path), data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


@st.composite
def mutated_payload(draw: st.DrawFn) -> Any:
    """A captured Alertmanager payload with a few fields replaced by arbitrary JSON, or removed."""
    payload = copy.deepcopy(draw(st.sampled_from(PAYLOADS)))
    for _ in range(draw(st.integers(1, 4))):
        node = payload
        path: list[Any] = []
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
            path.append(key)
            node = node[key]
        if not path:
            return draw(JSON)
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return payload


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=st.one_of(mutated_payload(), JSON.map(lambda v: {"alerts": v}), JSON))
def test_webhook_answers_any_json_deliberately(server: ThreadedServer, body: Any) -> None:
    status = post(server, "/webhook/alertmanager", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status in WEBHOOK_STATUSES


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=3000), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_webhook_answers_any_bytes_deliberately(server: ThreadedServer, raw: bytes, content_type: str) -> None:
    status = post(server, "/webhook/alertmanager", raw, {"Content-Type": content_type} if content_type else {})
    assert status in WEBHOOK_STATUSES


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    """JSON nested past the depth limit (64), alone or as the value of a field of a real payload."""
    depth = draw(st.integers(65, 9_000))  # within the fuzzed app's 64 KiB body limit
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    nested = opener * depth + b"1" + closer * depth
    if draw(st.booleans()):
        return nested
    payload = copy.deepcopy(draw(st.sampled_from(PAYLOADS)))
    field = draw(st.sampled_from(["receiver", "groupLabels", "truncatedAlerts"]))
    payload[field] = "__HERE__"
    return json.dumps(payload).encode().replace(b'"__HERE__"', nested)


@st.composite
def huge_integer(draw: st.DrawFn) -> bytes:
    """A real payload with an integer of more than 4,300 digits where a number, a string or a time goes."""
    payload = copy.deepcopy(draw(st.sampled_from(PAYLOADS)))
    digits = draw(st.integers(4_301, 20_000))
    sign = draw(st.sampled_from(["", "-"]))
    where = draw(st.sampled_from(["truncatedAlerts", "startsAt", "label", "top"]))
    if where == "startsAt":
        payload["alerts"][0]["startsAt"] = "__HERE__"
    elif where == "label":
        payload["alerts"][0]["labels"]["replicas"] = "__HERE__"
    else:
        payload["truncatedAlerts" if where == "truncatedAlerts" else "extra"] = "__HERE__"
    return json.dumps(payload).encode().replace(b'"__HERE__"', (sign + "7" * digits).encode())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(deeply_nested(), huge_integer()))
@example(body=b"[" * 30_000 + b"]" * 30_000)
def test_hostile_json_is_400(server: ThreadedServer, body: bytes) -> None:
    """Nesting past the limit and integers past Python's digit limit → 400, never a 500."""
    assert post(server, "/webhook/alertmanager", body, {"Content-Type": "application/json"}) == 400


TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:01Z",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999Z",
            "1969-12-31T23:59:59Z",
        ]
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    starts=TIMES,
    ends=TIMES,
    value=st.text(max_size=10).map(lambda t: t * 500),
    status=st.sampled_from(["firing", "resolved"]),
)
def test_poison_alert_never_costs_the_payload(
    server: ThreadedServer, starts: str, ends: str, value: str, status: str
) -> None:
    """A real alert plus one with any time (year 1 to 9999, any offset) and a long label value → 200."""
    payload = copy.deepcopy(PAYLOADS[0])
    poison = copy.deepcopy(payload["alerts"][0])
    poison.update(status=status, startsAt=starts, endsAt=ends, fingerprint="")
    poison["labels"] = {**poison["labels"], "alertname": "Poison", "blob": value}
    payload["alerts"].append(poison)
    body = json.dumps(payload, ensure_ascii=False).encode()
    assert post(server, "/webhook/alertmanager", body, {"Content-Type": "application/json"}) == 200


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """The app with a webhook token and an API token set."""
    root: Path = tmp_path_factory.mktemp("fuzz-guarded")
    config = parse_config({"storage": {"url": f"sqlite:///{root}/fuzz.db"}, "runbooks": {"dir": str(root)}})
    app = create_app(config, secrets(webhook_token="hook-token", api_token="api-token"), console_stream=io.StringIO())
    running = ThreadedServer(app)
    yield running
    running.close()


# Printable ASCII and any byte 0x80-0xFF (control characters are refused by the HTTP parser before
# alertbot sees them); urllib sends a str's characters as Latin-1 bytes, so these arrive as bytes
# that are mostly not UTF-8.
HEADER_BYTES = st.lists(st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF)), min_size=1, max_size=60).map(bytes)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=HEADER_BYTES,
    scheme=st.sampled_from(["Bearer ", "bearer ", "", "Basic "]),
    path=st.sampled_from(["webhook", "api"]),
)
@example(raw=b"\xff\xfe\xc3\x28hook-token", scheme="Bearer ", path="webhook")
def test_non_utf8_authorization_is_401(guarded: ThreadedServer, raw: bytes, scheme: str, path: str) -> None:
    """Authorization with arbitrary bytes (not UTF-8 included) → 401, never a 500."""
    header = {"Authorization": scheme + raw.decode("latin-1"), "Content-Type": "application/json"}
    if path == "webhook":
        status = post(guarded, "/webhook/alertmanager", json.dumps(PAYLOADS[0]).encode(), header)
    else:
        request = urllib.request.Request(guarded.url("/api/v1/incidents"), headers=header)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
    assert status == 401


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(SECRET, stamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), user=st.text(max_size=20))
@example(text="ack 9223372036854775808", user="U1")  # an id past the database's integers
@example(text="timeline #2147483648", user="U1")
def test_signed_slash_commands_never_fail(server: ThreadedServer, text: str, user: str) -> None:
    """Any command text from any user: an answer (usage, a refusal, a result), never a 500."""
    body = urllib.parse.urlencode(
        {"command": "/alertbot", "text": text, "user_id": user or "U1", "trigger_id": uuid.uuid4().hex}
    ).encode()
    assert post(server, "/slack/commands", body, signed(body)) in {200, 400}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["block_actions", "view_submission", ""]),
                "user": st.one_of(JSON, st.fixed_dictionaries({"id": st.text(max_size=12)})),
                "actions": st.lists(
                    st.fixed_dictionaries(
                        {
                            "action_id": st.sampled_from(
                                [
                                    "runbook_approve",
                                    "runbook_cancel",
                                    "incident_ack",
                                    "incident_resolve",
                                    "incident_silence_1h",
                                    "change_undo",
                                    "other",
                                ]
                            ),
                            "value": st.one_of(st.text(max_size=12), st.integers().map(str)),
                        }
                    ),
                    max_size=2,
                ),
                "response_url": st.just(""),
            }
        ),
    ),
    raw=st.booleans(),
)
@example(
    payload={
        "type": "block_actions",
        "user": {"id": "0"},
        "response_url": "",  # found: a 500 (id overflow)
        "actions": [{"action_id": "runbook_approve", "value": "9223372036854775808"}],
    },
    raw=False,
)
def test_signed_interactions_never_fail(server: ThreadedServer, payload: Any, raw: bool) -> None:
    text = json.dumps(payload) if not raw else str(payload)
    body = urllib.parse.urlencode({"payload": text, "trigger_id": uuid.uuid4().hex}).encode()
    assert post(server, "/slack/interactions", body, signed(body)) in {200, 400}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=500),
    stamp=st.text(PRINTABLE, min_size=1, max_size=15),
    signature=st.text(PRINTABLE, min_size=1, max_size=80),
)
def test_unsigned_slack_requests_are_401(server: ThreadedServer, body: bytes, stamp: str, signature: str) -> None:
    headers = {
        "X-Slack-Request-Timestamp": stamp.strip() or "0",
        "X-Slack-Signature": signature.strip() or "v0=0",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert post(server, "/slack/commands", body, headers) == 401


def test_still_healthy_after_the_fuzzing(server: ThreadedServer, guarded: ThreadedServer) -> None:
    assert http("GET", server.url("/healthz"))[0] == 200
    assert http("GET", server.url("/readyz"))[0] == 200
    assert http("GET", guarded.url("/healthz"))[0] == 200
