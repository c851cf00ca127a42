"""Station passwords (OCPP security profiles 1 and 2: HTTP Basic at the handshake).

OCPP asks for machine-made passwords of 16 to 40 characters (the ``BasicAuthPassword``
variable); we refuse others. They are kept only as scrypt hashes with a per-station salt
(about 25 ms of one core per check here, so a storm of 5,000 reconnecting stations after a CSMS
restart costs about two minutes of one core; the server remembers passwords that passed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS = 16, 40


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 parts)."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ValueError(
            f"a station password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
            f" (OCPP BasicAuthPassword); this one has {len(password)}"
        )
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    parts = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"scrypt${_N}${_R}${_P}${parts[0]}${parts[1]}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
    )
    return hmac.compare_digest(digest, expected)
