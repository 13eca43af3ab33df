"""Password hashes for the console's named users (``ui.users[].password_hash``): scrypt from the
standard library, written ``scrypt$N$r$p$SALT$HASH`` (base64), made by ``alertbot ui-password``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1  # about 16 MiB and a few tens of milliseconds per check
PREFIX = "scrypt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"{PREFIX}${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def check_format(value: str) -> str:
    """``value`` if it is a hash this module can check; else ValueError saying how to make one."""
    parts = value.split("$")
    try:
        ok = len(parts) == 6 and parts[0] == PREFIX and all(int(x) > 0 for x in parts[1:4])
        ok = ok and len(base64.b64decode(parts[4], validate=True)) >= 8
        ok = ok and len(base64.b64decode(parts[5], validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("not a password hash: make one with `alertbot ui-password` (never the password itself)")
    return value


def verify(password: str, stored: str) -> bool:
    """Constant-time comparison of ``password``'s scrypt digest with ``stored``."""
    _, n, r, p, salt, digest = check_format(stored).split("$")
    given = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=2**26
    )
    return hmac.compare_digest(given, base64.b64decode(digest))
