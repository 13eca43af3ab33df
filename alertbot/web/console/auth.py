"""Who is looking at the console, and what they may do (docs/console.md, "Access").

- With the API token configured, ``/ui/login`` takes the token (and a name to be known by) or a
  named user's password (``ui.users``), and sets a session cookie: signed with a key derived from the
  API token, ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the request came over HTTPS, lasting
  ``ui.session_ttl``. The token's holder may do what the API may (approver); a named user has the
  role written beside them.
- With ``ui.auth: proxy``, an authenticating proxy's header (``ui.proxy.header``) names the user —
  believed only from ``ui.proxy.trusted`` addresses; roles by ``ui.proxy.responders``/``approvers``.
- Without the API token and without a proxy, the console is read-only, and answers loopback only.

Every state-changing request carries a CSRF token (a hidden form field) bound to the session, and
must come from the console's own origin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import SecretStr

from alertbot.errors import AlertbotError
from alertbot.services.roles import Actor
from alertbot.settings_sections import UiConfig

COOKIE = "alertbot_session"
Role = Literal["viewer", "responder", "approver"]


class ConsoleForbidden(AlertbotError):
    code = "forbidden"
    http_status = 403
    exit_code = 1


@dataclass(frozen=True)
class Viewer:
    """The person behind a console request."""

    identity: str  # ui:alice, ui:token:alice, proxy:alice@example.com, or "loopback (read-only)"
    role: Role
    nonce: str  # what the CSRF token is bound to
    signed_in: bool  # a session (or the proxy) vouches for them; False: read-only on loopback
    bind: str = ""  # a named user's session: a digest of the password hash it was opened with

    @property
    def actor(self) -> Actor:
        return Actor.console(self.identity, self.role)

    def may(self, role: Role) -> bool:
        order = ("viewer", "responder", "approver")
        return self.signed_in and order.index(self.role) >= order.index(role)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Signed session cookies and CSRF tokens. The key comes from the API token, so every replica
    accepts every replica's sessions, and rotating the token signs everyone out. With no API token
    (proxy mode only) a key made at start serves: forms then work on the replica that rendered them."""

    def __init__(self, api_token: SecretStr | None) -> None:
        seed = api_token.get_secret_value().encode() if api_token is not None else secrets.token_bytes(32)
        self._key = hmac.new(seed, b"alertbot console session v1", hashlib.sha256).digest()

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def issue(self, identity: str, role: Role, ttl: float, now: float, *, bind: str = "") -> str:
        claims = {"sub": identity, "role": role, "exp": int(now + ttl), "n": secrets.token_hex(8), "pw": bind}
        body = json.dumps(claims).encode()
        return f"{_b64(body)}.{self._sign(body)}"

    def read(self, cookie: str, now: float) -> Viewer | None:
        body_text, _, signature = cookie.partition(".")
        try:
            body = _unb64(body_text)
            if not hmac.compare_digest(signature, self._sign(body)):
                return None
            claims = json.loads(body)
            if int(claims["exp"]) <= now or claims["role"] not in ("viewer", "responder", "approver"):
                return None
            return Viewer(str(claims["sub"]), claims["role"], str(claims["n"]), True, str(claims.get("pw", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def csrf(self, viewer: Viewer) -> str:
        return self._sign(f"csrf|{viewer.identity}|{viewer.nonce}".encode())[:32]

    def check_csrf(self, viewer: Viewer, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf(viewer).encode())


class LoginThrottle:
    """Failed sign-ins: at most ``per_name`` a ``window`` for one name (a named user's password is
    what can be guessed) and ``per_address`` for one client address (behind a proxy, the proxy's)."""

    def __init__(self, per_name: int = 10, per_address: int = 30, window: float = 60.0, keys: int = 10_000) -> None:
        self._limits = {"name": per_name, "address": per_address}
        self._window, self._keys = window, keys
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, keys: list[str], now: float) -> bool:
        for key in keys:
            recent = self._failures.get(key)
            while recent and now - recent[0] > self._window:
                recent.popleft()
            if recent is not None and len(recent) >= self._limits[key.partition(":")[0]]:
                return True
        return False

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            if key not in self._failures and len(self._failures) >= self._keys:
                for old in list(self._failures)[: self._keys // 10]:  # the oldest keys go first
                    del self._failures[old]
            self._failures.setdefault(key, deque()).append(now)


def address(remote: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address; an IPv4-mapped IPv6 one (a dual-stack listener) as IPv4."""
    try:
        ip = ipaddress.ip_address(remote or "")
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def is_loopback(remote: str | None) -> bool:
    ip = address(remote)
    return ip is not None and ip.is_loopback


LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def password_bind(ui: UiConfig, identity: str) -> str:
    """What ties a named user's session to their entry: a digest of their password hash ("" else)."""
    user = next((u for u in ui.users if f"ui:{u.name}" == identity), None)
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16] if user is not None else ""


def viewer_of(request: web.Request, ui: UiConfig, sessions: Sessions, *, token_configured: bool) -> Viewer | None:
    """Who is asking: from the proxy's header, the session cookie, or (read-only) loopback; None when
    they must sign in. Refuses (403) what may not see the console at all."""
    if ui.auth == "proxy":
        assert ui.proxy is not None
        ip = address(request.remote)
        if ip is None or not any(ip in net for net in ui.proxy.trusted):
            raise ConsoleForbidden(f"the console is served through its proxy only ({request.remote} is not trusted)")
        named = request.headers.getall(ui.proxy.header, [])
        if len(named) != 1:  # none, or a client's own copy the proxy appended to
            raise ConsoleForbidden(f"the proxy must send exactly one {ui.proxy.header} header")
        user = named[0].strip()
        if not user or len(user) > 200:
            raise ConsoleForbidden(f"the proxy sent no {ui.proxy.header} value")
        role: Role = (
            "approver" if user in ui.proxy.approvers else "responder" if user in ui.proxy.responders else "viewer"
        )
        return Viewer(f"proxy:{user}", role, nonce=user, signed_in=True)
    if not token_configured:
        # Loopback, by address and by name (a page elsewhere cannot rebind a name of its own here).
        if not is_loopback(request.remote) or request.host.rsplit(":", 1)[0] not in LOCAL_HOSTS:
            raise ConsoleForbidden("without ALERTBOT_API_TOKEN the console is read-only and answers on loopback only")
        return Viewer("loopback (read-only)", "viewer", nonce="", signed_in=False)
    cookie = request.cookies.get(COOKIE)
    viewer = sessions.read(cookie, time.time()) if cookie else None
    if viewer is None or viewer.identity.endswith(" (token)"):
        return viewer
    # A named user's session holds while their entry does, with the role it has now.
    entry = next((u for u in ui.users if f"ui:{u.name}" == viewer.identity), None)
    if entry is None or password_bind(ui, viewer.identity) != viewer.bind:
        return None
    return Viewer(viewer.identity, entry.role, viewer.nonce, True, viewer.bind)


def set_session(request: web.Request, response: web.StreamResponse, value: str, ttl: float) -> None:
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    response.set_cookie(COOKIE, value, max_age=int(ttl), path="/ui/", httponly=True, samesite="Strict", secure=secure)


def same_origin(request: web.Request) -> bool:
    """A form post from the console itself: its Origin (or Referer) names this host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if not origin:
        return False
    host = origin.split("://", 1)[-1].split("/", 1)[0]
    return host == request.host
