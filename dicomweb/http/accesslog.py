"""The per-request access log, in the Combined Log Format (Apache's, which log tools read),
with the identity as the user and no patient data: query values other than paging, flags and
UIDs are written as '-' (a search for PatientName=Doe* shows as PatientName=-)."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl, quote

from flask import Flask, Response, g, request

log = logging.getLogger("wsiarchive.access")
# Parameters whose values are never patient data: PS3.18 §8.3.4 and §10.6.1 paging and flags,
# the rendered-resource parameters (§8.3.5), transfer syntaxes and UIDs.
SAFE = {
    "limit",
    "offset",
    "fuzzymatching",
    "includefield",
    "accept",
    "charset",
    "quality",
    "viewport",
    "window",
    "iccprofile",
    "annotation",
    "transfer-syntax",
}
_UID = re.compile(r"[0-9.,]{1,1024}")


def _redacted(query: str) -> str:
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        keep = name.lower() in SAFE or name.endswith("UID") and _UID.fullmatch(value)
        pairs.append(f"{quote(name)}={quote(value, safe=',.') if keep else '-'}")
    return "&".join(pairs)


def install(app: Flask, quiet: frozenset[str] = frozenset()) -> None:
    """Log every request once it is answered, but those to the paths in *quiet* (probes a
    load balancer asks every few seconds)."""

    @app.before_request
    def _started() -> None:
        g.access_started = time.monotonic()

    @app.after_request
    def _logged(response: Response) -> Response:
        if not log.isEnabledFor(logging.INFO) or request.path in quiet:
            return response
        principal = g.get("principal")
        user = principal.subject if principal is not None else "-"
        query = request.query_string.decode("latin-1")
        target = quote(request.path, safe="/.,") + (f"?{_redacted(query)}" if query else "")
        size = response.headers.get("Content-Length", "-")
        elapsed = time.monotonic() - g.get("access_started", time.monotonic())
        log.info(
            '%s - %s [%s] "%s %s %s" %d %s "-" "%s" %.1fms',
            request.remote_addr or "-",
            user,
            time.strftime("%d/%b/%Y:%H:%M:%S %z"),
            request.method,
            target,
            request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            response.status_code,
            size,
            request.user_agent.string.replace('"', "'")[:200],
            elapsed * 1000,
        )
        return response
