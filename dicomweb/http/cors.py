"""Cross-origin resource sharing (the Fetch standard's CORS protocol): the origin allow-list,
preflight answers, and the headers that let a listed origin's script read a response."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Response, request

from dicomweb.http.errors import error_response

ANY = "*"
# The request headers a DICOMweb client sends beyond the CORS-safelisted ones.
ALLOWED_HEADERS = (
    "Accept",
    "Authorization",
    "Content-Type",
    "Range",
    "If-None-Match",
    "If-Modified-Since",
)
# The response headers a script may read beyond the CORS-safelisted ones.
EXPOSED_HEADERS = (
    "Content-Range",
    "ETag",
    "Warning",
    "Content-Location",
    "Content-Length",
    "Last-Modified",
)
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer
# Private Network Access (WICG, on top of Fetch): a page on a public origin asks before it
# reads a server on a private address (an archive inside the hospital) with this header.
REQUEST_PRIVATE_NETWORK = "Access-Control-Request-Private-Network"
ALLOW_PRIVATE_NETWORK = "Access-Control-Allow-Private-Network"
_ORIGIN = re.compile(r"[a-z][a-z0-9+.\-]*://[^/?#\s]+")


@dataclass(frozen=True)
class Policy:
    """Which origins may read responses, with or without credentials, using *methods*."""

    origins: frozenset[str]
    credentials: bool
    methods: tuple[str, ...]

    @classmethod
    def of(cls, origins: str, credentials: bool, methods: Iterable[str]) -> Policy | None:
        """The policy of the settings (None: CORS is off); a configuration the Fetch standard
        makes meaningless raises ValueError, so that the server does not start with it."""
        listed = frozenset(o.strip().rstrip("/").lower() for o in origins.split(",") if o.strip())
        if not listed:
            if credentials:
                raise ValueError("cors_credentials needs cors_origins: no origin is listed")
            return None
        if ANY in listed and len(listed) > 1:
            raise ValueError("cors_origins: * allows every origin; list no other with it")
        if ANY in listed and credentials:
            # Fetch, CORS check: a credentialed response must name its origin; browsers
            # refuse Access-Control-Allow-Origin: * together with credentials.
            raise ValueError(
                "cors_credentials cannot be used with cors_origins = *: list the origins "
                "allowed to send credentials"
            )
        for origin in listed - {ANY}:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"cors_origins: {origin!r} is not an origin (scheme://host[:port], no path)"
                )
        return cls(listed, credentials, tuple(sorted({*methods, "OPTIONS"})))

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from *origin*, if any."""
        if origin is None:
            return None
        if ANY in self.origins:
            return ANY
        return origin if origin.lower() in self.origins else None

    def _common(self, response: Response, allowed: str) -> None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        if self.credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"

    def decorate(self, response: Response) -> Response:
        """The CORS headers of an actual (non-preflight) response."""
        if ANY not in self.origins:
            # The response depends on Origin whenever the allow-list is explicit: a cache
            # must not hand one origin's answer to another (Fetch, "CORS protocol and HTTP
            # caches").
            response.vary.add("Origin")
        allowed = self.allowed_origin(request.headers.get("Origin"))
        if allowed is not None and "Access-Control-Allow-Origin" not in response.headers:
            self._common(response, allowed)
            response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return response

    @staticmethod
    def is_preflight() -> bool:
        """Fetch, CORS-preflight request: OPTIONS with Origin and
        Access-Control-Request-Method."""
        return (
            request.method == "OPTIONS"
            and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers
        )

    def preflight(self) -> Response:
        """The answer to a preflight: 204 with what the origin may do, or 403 for an origin
        not listed (a preflight without Access-Control-Allow-Origin fails in the browser
        either way; the status says why to a person reading it)."""
        origin = request.headers.get("Origin")
        allowed = self.allowed_origin(origin)
        if allowed is None:
            response = error_response(403, f"cross-origin requests from {origin} are not allowed")
            response.vary.add("Origin")
            return response
        response = Response(status=204)
        self._common(response, allowed)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(self.methods)
        response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        if request.headers.get(REQUEST_PRIVATE_NETWORK, "").lower() == "true":
            # The origin is listed: reaching this server from it is what the list means.
            response.headers[ALLOW_PRIVATE_NETWORK] = "true"
        if ANY not in self.origins:
            response.vary.add("Origin")
        return response
