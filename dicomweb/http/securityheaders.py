"""The security headers every response carries: HSTS over TLS, no sniffing, no referrer,
no framing, and no storing of patient data in shared caches."""

from __future__ import annotations

from flask import Response, request

SERVER = "wsiarchive"
HSTS_MAX_AGE = 31_536_000  # one year (RFC 6797 §6.1.1)
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # An API response is never a document that loads or frames anything.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# What a response without caching directives of its own gets: a search result or metadata
# names patients, and no cache (shared or the browser's disk) needs it (RFC 9111 §5.2.2.5).
DEFAULT_CACHE_CONTROL = "no-store"
_PRIVATE = ("private", "no-store")


def add(response: Response, behind_tls_proxy: bool) -> Response:
    """Set the security headers on *response* (an after_request function). The response's
    headers are read once (werkzeug looks each name up by a scan: on the frame hot path,
    one lookup per header cost more than the rest of the request's hooks)."""
    headers = response.headers
    present = {name.lower(): value for name, value in headers.items()}
    for name, value in FIXED.items():
        if name.lower() not in present:
            headers.add(name, value)
    # RFC 6797 §7.2: HSTS only over a secure transport (a plain-HTTP one is ignored, and a
    # proxy in front that speaks TLS is the operator's word).
    if behind_tls_proxy or request.scheme == "https":
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE}"
    cache_control = present.get("cache-control")
    if cache_control is None:
        headers.add("Cache-Control", DEFAULT_CACHE_CONTROL)
    elif not any(d in cache_control.lower() for d in _PRIVATE):
        # Every response carries patient data: shared caches must never keep one (§5.2.2.7).
        headers["Cache-Control"] = f"private, {cache_control}"
    # granian names itself unless the application does (no version either way).
    if "server" in present:
        headers["Server"] = SERVER
    else:
        headers.add("Server", SERVER)
    return response
