"""HTTP validators and caching for what a stored instance yields (frames, rendered images,
bulk data, the instance itself): ETag, Last-Modified, 304 Not Modified (RFC 9110 §8.8, §13.1)
and Cache-Control (RFC 9111 §5.2).

A representation is fixed by the blob it comes from (a blob is never rewritten: storing an
instance again gives it a new blob key) and by what was asked of it (frames, media type,
transfer syntax, rendering parameters). Its ETag is a hash of both, so it is strong: the same
ETag always means the same bytes. Multipart bodies then use a boundary derived from the same
hash, so that they too are byte for byte the same each time.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from flask import Response, request


class Representation:
    """The validators of one response made from immutable *source* bytes (a blob key),
    last changed at *modified*. *weak*: the ETag is weak (§8.8.1), for a body whose bytes
    may differ while its meaning does not (metadata: gzip or not, documents re-rendered)."""

    def __init__(
        self,
        source: str,
        modified: datetime | None,
        *variant: object,
        max_age: int = 0,
        weak: bool = False,
    ) -> None:
        key = "\x1f".join([source, *map(str, variant)])
        self.digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        self.opaque = f'"{self.digest}"'
        self.etag = f"W/{self.opaque}" if weak else self.opaque
        self.max_age = max_age
        stored = modified
        self.last_modified = (
            stored.replace(tzinfo=UTC, microsecond=0) if stored is not None else None
        )

    @property
    def boundary(self) -> str:
        """A multipart boundary that makes the body the same every time."""
        return f"wsiarchive-{self.digest}"

    def headers(self) -> dict[str, str]:
        headers = {"ETag": self.etag, "Vary": "Accept"}
        if self.last_modified is not None:
            headers["Last-Modified"] = format_datetime(self.last_modified, usegmt=True)
        # private: responses carry patient data, which shared caches must not keep.
        headers["Cache-Control"] = (
            f"private, max-age={self.max_age}" if self.max_age > 0 else "private, no-cache"
        )
        return headers

    def unchanged(self) -> bool:
        """Whether the request's preconditions say the client has this representation
        already (If-None-Match first; If-Modified-Since only without it, §13.1.3)."""
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = [tag.strip() for tag in if_none_match.split(",")]
            # Weak comparison (§8.8.3.2): W/ prefixes are ignored.
            return "*" in tags or any(tag.removeprefix("W/") == self.opaque for tag in tags)
        since = request.headers.get("If-Modified-Since")
        if since and self.last_modified is not None:
            try:
                when = parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False  # an invalid date is ignored (§13.1.3)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return self.last_modified <= when
        return False

    def not_modified(self) -> Response:
        """304 with the headers a 200 would have had that matter to caches (§15.4.5)."""
        return Response(status=304, headers=self.headers())


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)
