"""Signed webhooks: `X-Switchyard-Signature: t=<unix seconds>,v1=<hex>`.

`v1` is HMAC-SHA256 over `f"{t}.{raw body}"` with the source's
`options.webhook_secret`. Clients sign with `sign`; the gateway checks with
`verify`, which compares in constant time, refuses a timestamp more than
`TOLERANCE_S` away from now, and returns the digest that identifies this
delivery for replay protection. Pure: the clock is a parameter.
"""

from __future__ import annotations

import hashlib
import hmac

from gateway.contract import ascii_number, secrets_match

HEADER = "X-Switchyard-Signature"
TOLERANCE_S = 300
_MAX_HEADER_CHARS = 1024
# Unix seconds up to the year 33658: a longer `t` is no time a client means.
_MAX_T = 10**12 - 1


class SignatureError(ValueError):
    """The signature header is missing, malformed, wrong, or outside the time window."""


def _mac(secret: str | bytes, body: bytes, t: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, t: int) -> str:
    """The header value a client sends with `body` at unix time `t`."""
    return f"t={int(t)},v1={_mac(secret, body, int(t))}"


def verify(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> str:
    """Check `header` against `body`; return the delivery digest or raise SignatureError.

    Several `v1=` entries are accepted (one per secret during a rotation); any
    match passes. The digest is SHA-256 of the timestamp, the matching
    signature and the body, so the same delivery sent twice has the same digest.
    """
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    if len(header) > _MAX_HEADER_CHARS:
        raise SignatureError(f"{HEADER} header is too long")
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {HEADER} header: expected t=<seconds>,v1=<hex>")
        if name == "t":
            t = ascii_number(value, most=_MAX_T)
            if t is None:
                raise SignatureError(f"malformed {HEADER} header: t must be unix seconds")
        elif name == "v1":
            candidates.append(value.lower())
    if t is None or not candidates:
        raise SignatureError(f"malformed {HEADER} header: expected t=<seconds>,v1=<hex>")
    if abs(now - t) > tolerance_s:
        raise SignatureError(
            f"signature timestamp is {int(now - t)} s from now; the window is ±{int(tolerance_s)} s"
        )
    expected = _mac(secret, body, t)
    matched = None
    for candidate in candidates:
        # compare_digest on every candidate, so timing says nothing about which matched.
        if secrets_match(candidate, expected):
            matched = candidate
    if matched is None:
        raise SignatureError("signature does not match the body")
    return hashlib.sha256(f"{t}.{matched}.".encode() + body).hexdigest()


__all__ = ["HEADER", "TOLERANCE_S", "SignatureError", "sign", "verify"]
