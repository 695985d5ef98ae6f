"""Short-lived read tokens for one private knowledge base and one web origin, signed by the server (HMAC-SHA256).

A page embedding the widget gets such a token from its own backend (which asks `POST /kbs/{kb}/tokens`
with the admin token), so it never holds a long-lived key. A token is `v1.<claims>.<signature>`,
both parts base64url; the claims say the knowledge base, the origin and when it expires. Every
comparison is in constant time.
"""

import base64
import hashlib
import hmac
import json

from .errors import UnauthorizedError

PREFIX = "v1"


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, claims: str) -> str:
    return _encode(hmac.new(key, f"{PREFIX}.{claims}".encode("ascii"), hashlib.sha256).digest())


def mint(key: bytes, kb: str, origin: str, expires_at: float) -> str:
    """A token that lets pages of `origin` read `kb` until `expires_at` (seconds since the epoch)."""
    claims = _encode(json.dumps({"kb": kb, "origin": origin, "exp": int(expires_at)}, separators=(",", ":")).encode())
    return f"{PREFIX}.{claims}.{_signature(key, claims)}"


def verify(key: bytes, token: str, kb: str, origin: str | None, now: float) -> None:
    """Accept a token signed with `key` for `kb`, sent from `origin`, before it expires; else UnauthorizedError."""
    prefix, _, rest = token.partition(".")
    claims, _, signature = rest.partition(".")
    if not hmac.compare_digest(prefix.encode(), PREFIX.encode()) or not claims or not signature:
        raise UnauthorizedError(f"not a read token for the knowledge base {kb}")
    if not hmac.compare_digest(signature.encode("ascii", "replace"), _signature(key, claims).encode()):
        raise UnauthorizedError(f"not a read token for the knowledge base {kb}: its signature does not match")
    try:
        parsed = json.loads(_decode(claims))
        token_kb, token_origin, expires = str(parsed["kb"]), str(parsed["origin"]), float(parsed["exp"])
    except (ValueError, KeyError, TypeError):
        raise UnauthorizedError(f"not a read token for the knowledge base {kb}") from None
    if not hmac.compare_digest(token_kb.encode(), kb.encode()):
        raise UnauthorizedError(f"the read token is for another knowledge base, not {kb}")
    if origin is None or not hmac.compare_digest(token_origin.encode(), origin.encode()):
        raise UnauthorizedError(f"the read token for {kb} is for pages of another origin")
    if now >= expires:
        raise UnauthorizedError(f"the read token for {kb} has expired: ask the page's server for a new one")
