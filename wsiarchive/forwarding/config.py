"""The forward_destinations and forward_rules settings, parsed and checked."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from storage.dicom.document import JsonObject
from wsiarchive.forwarding.auth import ClientCredentials, client_token, forget, static_token


class Kind(StrEnum):
    """How a destination is sent to."""

    DICOMWEB = "dicomweb"  # STOW-RS (PS3.18 10.5)
    DIMSE = "dimse"  # C-STORE (PS3.4 B)


@dataclass(frozen=True)
class Destination:
    """One archive instances are forwarded to."""

    name: str
    kind: Kind
    url: str = ""  # dicomweb: the service root
    token_env: str = ""  # dicomweb: the environment variable holding the bearer token
    token_file: str = ""  # dicomweb: the file holding it
    client: ClientCredentials | None = None  # dicomweb: tokens by client credentials
    ae_title: str = ""  # dimse
    host: str = ""
    port: int = 0

    def token(self) -> str:
        """The bearer token, read or fetched when needed (a rotated file is picked up, an
        expiring token renewed); '' for none; auth.TokenError when it cannot be had."""
        if self.client is not None:
            return client_token(self.client)
        return static_token(self.token_env, self.token_file)

    def token_refused(self) -> None:
        """The destination answered 401: a token obtained by client credentials is dropped
        (revoked, or its signing key rotated) so that the next request gets a new one."""
        if self.client is not None:
            forget(self.client)


SOURCE_AE = "source_ae"  # the condition on the calling AE title of a C-STORE
# The conditions of a rule: the name in the setting and the attribute's tag (PS3.6), or
# SOURCE_AE for who stored the instance.
CONDITIONS = {
    "modality": "00080060",
    "sop_class": "00080016",
    "institution": "00080080",
    "study_description": "00081030",
    SOURCE_AE: SOURCE_AE,
}


@dataclass(frozen=True)
class Rule:
    """Instances whose attributes match every condition go to every destination of *to*."""

    to: tuple[str, ...]
    conditions: tuple[tuple[str, tuple[str, ...]], ...]  # (tag, glob patterns)

    def matches(self, document: JsonObject, source_ae: str = "") -> bool:
        """Whether an instance of *document*, stored by C-STORE from *source_ae* ("" for
        another door), matches every condition."""
        return all(
            any(
                _matches(value, pattern)
                for value in ([source_ae] if tag == SOURCE_AE else _values(document, tag))
                for pattern in globs
            )
            for tag, globs in self.conditions
        )


def _values(document: JsonObject, tag: str) -> list[str]:
    element = document.get(tag)
    if not isinstance(element, dict):
        return [""]
    values = element.get("Value")
    if not isinstance(values, list) or not values:
        return [""]
    return [str(value) for value in values]


def _matches(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value.strip().lower(), pattern.strip().lower())


def _words(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{what}: a string or a list of strings")
    return tuple(items)


def _tables(text: str, name: str) -> list[Mapping[str, Any]]:
    try:
        tables = json.loads(text or "[]")
    except ValueError as exc:
        raise ValueError(f"{name} is not an array of tables: {exc}") from exc
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{name} is not an array of tables")
    return tables


def _destination(entry: Mapping[str, Any]) -> Destination:
    name = entry.get("name")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ValueError("forward_destinations: each needs a name (at most 64 characters)")
    what = f"forward_destinations {name!r}"
    if "token" in entry:
        raise ValueError(f"{what}: no inline token; use token_env or token_file")
    try:
        kind = Kind(entry.get("kind", ""))
    except ValueError:
        raise ValueError(f"{what}: kind is dicomweb or dimse") from None
    if kind is Kind.DICOMWEB:
        url = str(entry.get("url", "")).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{what}: url {url!r} is not an http(s) URL")
        return Destination(
            name,
            kind,
            url=url,
            token_env=str(entry.get("token_env", "")),
            token_file=str(entry.get("token_file", "")),
            client=_client(entry, what),
        )
    title, host, port = entry.get("ae_title"), entry.get("host"), entry.get("port")
    if not isinstance(title, str) or not 0 < len(title) <= 16:
        raise ValueError(f"{what}: ae_title of 1 to 16 characters")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"{what}: host and port (1-65535)")
    return Destination(name, kind, ae_title=title, host=host, port=port)


CLIENT_KEYS = ("token_url", "client_id", "client_secret_env", "client_secret_file", "scope")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def _client(entry: Mapping[str, Any], what: str) -> ClientCredentials | None:
    """The destination's client credentials (``token_url`` and ``client_id`` with
    ``client_secret_env`` or ``client_secret_file``), None when it names none."""
    if not any(key in entry for key in CLIENT_KEYS):
        return None
    if "client_secret" in entry:
        raise ValueError(f"{what}: no inline client_secret; use client_secret_env or _file")
    if entry.get("token_env") or entry.get("token_file"):
        raise ValueError(f"{what}: a token (token_env, token_file) or client credentials")
    url = str(entry.get("token_url", ""))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what}: token_url {url!r} is not an http(s) URL")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError(f"{what}: client credentials need a client_id")
    secret_env, secret_file = (
        entry.get("client_secret_env", ""),
        entry.get("client_secret_file", ""),
    )
    if bool(secret_env) == bool(secret_file):
        raise ValueError(f"{what}: one of client_secret_env and client_secret_file")
    method = str(entry.get("token_auth", AUTH_METHODS[0]))
    if method not in AUTH_METHODS:
        raise ValueError(f"{what}: token_auth is {' or '.join(AUTH_METHODS)}")
    params = entry.get("token_params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{what}: token_params is a table of form fields")
    return ClientCredentials(
        url,
        client_id,
        secret_env=str(secret_env),
        secret_file=str(secret_file),
        scope=str(entry.get("scope", "")),
        auth_method=method,
        params=tuple(sorted((str(k), str(v)) for k, v in params.items())),
    )


def parse_destinations(text: str) -> dict[str, Destination]:
    """The forward_destinations setting, by name; ValueError for one that cannot work."""
    found: dict[str, Destination] = {}
    for entry in _tables(text, "forward_destinations"):
        destination = _destination(entry)
        if destination.name in found:
            raise ValueError(f"forward_destinations: {destination.name!r} twice")
        found[destination.name] = destination
    return found


def parse_rules(text: str, destinations: Iterable[str]) -> list[Rule]:
    """The forward_rules setting; ValueError for a rule naming an unknown destination or an
    unknown condition."""
    known = set(destinations)
    rules = []
    for entry in _tables(text, "forward_rules"):
        to = _words(entry.get("to"), "forward_rules: to")
        unknown = [name for name in to if name not in known]
        if unknown:
            raise ValueError(f"forward_rules: unknown destination {', '.join(unknown)}")
        wrong = sorted(set(entry) - set(CONDITIONS) - {"to"})
        if wrong:
            raise ValueError(
                f"forward_rules: unknown conditions {', '.join(wrong)} "
                f"(known: {', '.join(CONDITIONS)})"
            )
        conditions = tuple(
            (CONDITIONS[key], _words(value, f"forward_rules: {key}"))
            for key, value in entry.items()
            if key != "to"
        )
        rules.append(Rule(to, conditions))
    return rules
