"""The web console (/ui/) over HTTP: who may see and do what, sessions and CSRF, what a page shows
(escaped), and that its actions go through the same policy layer as Slack and the API. The browser
suite (tests/browser/) drives the same pages in chromium."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import ClientResponse

from alertbot.domain.passwords import hash_password
from tests.conftest import Harness, MakeHarness
from tests.helpers import payload_json

TOKEN = "console-api-token-5e1f"
FIRING = "am-higherrorrate-nutrition-service-firing.json"


async def sign_in(h: Harness, name: str = "alice", secret: str = TOKEN, **headers: str) -> ClientResponse:
    origin = {"Origin": str(h.client.make_url("/")).rstrip("/")}
    return await h.client.post(
        "/ui/login",
        data={"name": name, "secret": secret, "next": "/ui/incidents/1"},
        headers={**origin, **headers},
        allow_redirects=False,
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


async def post_form(h: Harness, path: str, form: dict[str, str], *, origin: bool = True) -> ClientResponse:
    headers = {"Origin": str(h.client.make_url("/")).rstrip("/")} if origin else {}
    return await h.client.post(path, data=form, headers=headers, allow_redirects=False)


async def test_without_a_token_the_console_is_read_only(make_harness: MakeHarness) -> None:
    h = await make_harness()
    await h.post_file(FIRING)
    page = await h.client.get("/ui/")
    html = await page.text()
    assert page.status == 200 and "HighErrorRate" in html and "nutrition-service" in html
    assert "loopback (read-only)" in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    incident = await (await h.client.get("/ui/incidents/1")).text()
    assert "Timeline" in incident and "Acknowledge</button>" not in incident
    refused = await post_form(h, "/ui/incidents/1/ack", {"csrf": "x"})
    assert refused.status == 403 and "read-only" in await refused.text()
    assert (await (await h.client.get("/api/v1/incidents/1")).json())["acked_by"] is None


async def test_signing_in_with_the_token_sets_a_strict_cookie_and_actions_are_attributed(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(secret_values={"api_token": TOKEN})
    await h.post_file(FIRING, token=None)
    to_login = await h.client.get("/ui/", allow_redirects=False)
    assert to_login.status == 303 and to_login.headers["Location"].startswith("/ui/login")
    wrong = await sign_in(h, secret="not-the-token")
    assert wrong.status == 401 and "Wrong name, password or token" in await wrong.text()
    signed = await sign_in(h)
    assert signed.status == 303 and signed.headers["Location"] == "/ui/incidents/1"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    page = await (await h.client.get("/ui/incidents/1")).text()
    assert "ui:alice (token) · approver" in page and "Acknowledge</button>" in page
    no_token = await post_form(h, "/ui/incidents/1/ack", {})
    assert no_token.status == 403 and "security token" in await no_token.text()
    elsewhere = await post_form(h, "/ui/incidents/1/ack", {"csrf": csrf_of(page)}, origin=False)
    assert elsewhere.status == 403 and "another site" in await elsewhere.text()
    acked = await post_form(h, "/ui/incidents/1/ack", {"csrf": csrf_of(page)})
    assert acked.status == 303
    record = await (await h.client.get("/api/v1/incidents/1", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert record["acked_by"] == "ui:alice (token)"


async def test_a_viewer_sees_but_may_not_act_and_a_responder_may(make_harness: MakeHarness) -> None:
    users = [
        {"name": "vera", "password_hash": hash_password("vera-pw"), "role": "viewer"},
        {"name": "rob", "password_hash": hash_password("rob-pw"), "role": "responder"},
    ]
    h = await make_harness({"ui": {"users": users}}, secret_values={"api_token": TOKEN})
    await h.post_file(FIRING)
    assert (await sign_in(h, "vera", "vera-pw")).status == 303
    page = await (await h.client.get("/ui/incidents/1")).text()
    assert "Acknowledge</button>" not in page
    refused = await post_form(h, "/ui/incidents/1/ack", {"csrf": csrf_of(page)})
    assert refused.status == 403 and "needs the responder role" in await refused.text()
    h.client.session.cookie_jar.clear()
    assert (await sign_in(h, "rob", "wrong")).status == 401
    assert (await sign_in(h, "rob", "rob-pw")).status == 303
    page = await (await h.client.get("/ui/incidents/1")).text()
    assert (await post_form(h, "/ui/incidents/1/silence", {"csrf": csrf_of(page)})).status == 303
    silences = await (await h.client.get("/ui/silences")).text()
    assert "alertname=&#34;HighErrorRate&#34; service=&#34;nutrition-service&#34;" in silences
    assert "ui:rob" in silences
    too_long = await post_form(
        h, "/ui/silences", {"csrf": csrf_of(silences), "matchers": "service=x", "duration": "30d"}
    )
    assert too_long.status == 400 and "7d" in await too_long.text()


async def test_a_trusted_proxy_names_the_user_and_nobody_else_may(make_harness: MakeHarness) -> None:
    proxy = {"header": "X-Auth-Request-Email", "trusted": ["127.0.0.1/32"], "responders": ["alice@example.com"]}
    h = await make_harness({"ui": {"auth": "proxy", "proxy": proxy}})
    await h.post_file(FIRING)
    who = {"X-Auth-Request-Email": "alice@example.com"}
    page = await (await h.client.get("/ui/incidents/1", headers=who)).text()
    assert "proxy:alice@example.com · responder" in page
    assert (await h.client.get("/ui/", allow_redirects=False)).status == 403  # no header: refused
    origin = {"Origin": str(h.client.make_url("/")).rstrip("/")}
    acked = await h.client.post(
        "/ui/incidents/1/ack", data={"csrf": csrf_of(page)}, headers={**who, **origin}, allow_redirects=False
    )
    assert acked.status == 303
    assert (await (await h.client.get("/api/v1/incidents/1")).json())["acked_by"] == "proxy:alice@example.com"


async def test_an_untrusted_address_is_refused_whatever_header_it_sends(make_harness: MakeHarness) -> None:
    proxy = {"header": "X-Forwarded-User", "trusted": ["10.0.0.0/8"]}
    h = await make_harness({"ui": {"auth": "proxy", "proxy": proxy}})
    refused = await h.client.get("/ui/", headers={"X-Forwarded-User": "admin"})
    assert refused.status == 403 and "through its proxy only" in await refused.text()


async def test_label_values_are_shown_escaped_and_the_list_refreshes_on_its_own(make_harness: MakeHarness) -> None:
    h = await make_harness()
    payload: dict[str, Any] = payload_json(FIRING)
    payload["alerts"][0]["labels"]["service"] = '<script>alert("x")</script>'
    await h.post_payload(json.dumps(payload))
    html = await (await h.client.get("/ui/?status=all")).text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    partial = await (await h.client.get("/ui/?status=all&partial=1")).text()
    assert "<html" not in partial and 'href="/ui/incidents/1"' in partial
    assert (await h.client.get("/ui/?severity=fatal")).status == 400
    bad = await h.client.get('/ui/?q=service=~"("')
    assert bad.status == 400 and "search:" in await bad.text()


async def test_failed_sign_ins_are_throttled(make_harness: MakeHarness) -> None:
    h = await make_harness(secret_values={"api_token": TOKEN})
    for _ in range(10):
        assert (await sign_in(h, secret="guess")).status == 401
    assert (await sign_in(h)).status == 429  # even the right token, for a while


async def test_silence_1h_silences_the_alert_by_its_own_labels_whatever_they_hold(make_harness: MakeHarness) -> None:
    """A label value is a value: ``~[A-Z].*`` does not become a regex matching every alert."""
    h = await make_harness(secret_values={"api_token": TOKEN})
    payload: dict[str, Any] = payload_json(FIRING)
    payload["alerts"][0]["labels"]["alertname"] = "~[A-Z].*"
    await h.post_payload(json.dumps(payload))
    await sign_in(h)
    page = await (await h.client.get("/ui/incidents/1")).text()
    assert (await post_form(h, "/ui/incidents/1/silence", {"csrf": csrf_of(page)})).status == 303
    (silence,) = await (await h.client.get("/api/v1/silences", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert silence["matchers"] == [
        'alertname="~[A-Z].*"',
        'service="nutrition-service"',
        'namespace="ai-nutritionist"',
    ]


async def test_what_a_client_sends_is_refused_with_a_4xx_never_a_500(make_harness: MakeHarness) -> None:
    h = await make_harness(secret_values={"api_token": TOKEN})
    origin = {"Origin": str(h.client.make_url("/")).rstrip("/")}
    bogus = {**origin, "Content-Type": "application/x-www-form-urlencoded; charset=bogus"}
    assert (await h.client.post("/ui/login", data=b"name=a&secret=b", headers=bogus)).status == 400
    multipart = {**origin, "Content-Type": "multipart/form-data; boundary=xx"}
    assert (await h.client.post("/ui/login", data=b"garbage", headers=multipart)).status == 415
    assert (
        await h.client.post(
            "/ui/login",
            data=b"name=\xff&secret=b",
            headers={**origin, "Content-Type": "application/x-www-form-urlencoded"},
        )
    ).status in (400, 401)
    await sign_in(h)
    six = " ".join(f'l{i}=~"a.*"' for i in range(6))
    assert (await h.client.get("/ui/", params={"q": six})).status == 400
    assert (await h.client.get("/ui/", params={"q": 'pad=~"' + "[^y]{0,9}" * 20 + '"'})).status == 400


async def test_a_named_users_session_follows_their_entry(make_harness: MakeHarness) -> None:
    """Demoted or removed (a reload), a signed-in user has the new role, or must sign in again."""
    users = [{"name": "rob", "password_hash": hash_password("rob-password"), "role": "responder"}]
    h = await make_harness({"ui": {"users": users}}, secret_values={"api_token": TOKEN})
    assert (await sign_in(h, "rob", "rob-password")).status == 303
    assert "ui:rob · responder" in await (await h.client.get("/ui/")).text()
    ui = h.state.config.ui
    demoted = ui.model_copy(update={"users": [ui.users[0].model_copy(update={"role": "viewer"})]})
    h.state.config = h.state.config.model_copy(update={"ui": demoted})
    assert "ui:rob · viewer" in await (await h.client.get("/ui/")).text()
    h.state.config = h.state.config.model_copy(update={"ui": ui.model_copy(update={"users": []})})
    assert (await h.client.get("/ui/", allow_redirects=False)).status == 303  # to sign in


async def test_the_proxy_header_must_be_sent_once_and_read_only_answers_local_names_only(
    make_harness: MakeHarness,
) -> None:
    proxy = {"header": "X-Forwarded-User", "trusted": ["127.0.0.1/32"], "approvers": ["admin"]}
    h = await make_harness({"ui": {"auth": "proxy", "proxy": proxy}})
    twice = [("X-Forwarded-User", "admin"), ("X-Forwarded-User", "eve")]
    refused = await h.client.get("/ui/", headers=twice)
    assert refused.status == 403 and "exactly one" in await refused.text()
    plain = await make_harness()
    assert (await plain.client.get("/ui/", headers={"Host": "attacker.example:8080"})).status == 403
    assert (await plain.client.get("/ui/", headers={"Host": "localhost:8080"})).status == 200


async def test_the_list_names_the_change_an_incident_started_after(make_harness: MakeHarness) -> None:
    h = await make_harness()
    change = {
        "kind": "deployment",
        "service": "nutrition-service",
        "namespace": "ai-nutritionist",
        "version": "1.4.3",
        "actor": "argo",
        "description": "canary 10%",
        "timestamp": "2026-11-29T19:51:53Z",  # three minutes before the alert started
    }
    assert (await h.client.post("/api/v1/events", json=change)).status == 201
    await h.post_file(FIRING)
    row = (await (await h.client.get("/ui/?partial=1")).text()).split('id="incident-1"')[1].split("</tr>")[0]
    assert "started 3 min after deployment nutrition-service 1.4.3" in row
