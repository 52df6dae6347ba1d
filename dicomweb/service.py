"""What every DICOMweb handler gets injected: the archive, the web settings, the public root."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from flask import g, request

from dicomweb.http.hosts import TrustedHosts
from dicomweb.limits import LimitConfig
from storage import Archive
from storage.access import Principal

PREFIX = "/dicomweb"


class WebConfig(LimitConfig, Protocol):
    """The settings of the DICOMweb front door (declared in wsiarchive's settings)."""

    @property
    def base_url(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def allowed_hosts(self) -> str: ...

    @property
    def behind_tls_proxy(self) -> bool: ...

    @property
    def max_request_bytes(self) -> int: ...

    @property
    def cors_origins(self) -> str: ...

    @property
    def cors_credentials(self) -> bool: ...

    @property
    def max_search_results(self) -> int: ...

    @property
    def cache_max_age(self) -> int: ...


@dataclass(frozen=True)
class Service:
    """The archive and the settings, as the handlers use them."""

    archive: Archive
    config: WebConfig

    def who(self) -> Principal:
        """The principal of the current request (dicomweb.identity authenticated it)."""
        principal: Principal = g.principal
        return principal

    def origin(self) -> str:
        """The public origin (scheme, host, port) of the service: its root without PREFIX."""
        return self.root()[: -len(PREFIX)]

    def root(self) -> str:
        """The public URL of the DICOMweb service root, without a trailing slash."""
        if self.config.base_url:
            return self.config.base_url.rstrip("/")
        # A Host nobody listed would otherwise poison every URL of the response (RFC 9110
        # §7.2: the Host is the client's say; base_url or allowed_hosts are the operator's).
        host = self.hosts.authority_for(request.host)
        scheme = "https" if self.config.behind_tls_proxy else request.scheme
        return f"{scheme}://{host}{PREFIX}"

    @cached_property
    def hosts(self) -> TrustedHosts:
        return TrustedHosts.of(self.config.allowed_hosts, self.config.host, self.config.port)
