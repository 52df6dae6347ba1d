"""The tiers and rules of the configuration (the storage_tiers and tier_rules tables)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEFAULT_TIER = "hot"  # the name of the blob store when no tiers are configured
GIB = 1 << 30  # cloud prices are per GB-month, billed by the GiB (AWS, Azure)
DEFAULT_RECALL_SECONDS = 3600.0  # Retry-After of a recall a tier does not estimate


class TierError(ValueError):
    """A storage_tiers or tier_rules entry that cannot be understood."""


@dataclass(frozen=True)
class Tier:
    """One storage tier: where its blobs live and what it costs.

    ``location`` is a blob store (a directory; "" is the archive's blob store), shared by
    tiers that differ only by ``storage_class`` (an S3 storage class or an Azure access
    tier). A tier that ``needs_recall`` cannot be read until a recall has brought the blob
    back to the first tier, which takes about ``recall_seconds``."""

    name: str
    location: str = ""
    storage_class: str = ""
    needs_recall: bool = False
    recall_seconds: float = DEFAULT_RECALL_SECONDS
    price_gb_month: float = 0.0
    price_gb_retrieved: float = 0.0


@dataclass(frozen=True)
class Rule:
    """Move a study's instances to ``tier`` when every condition given holds: at least
    ``after_days`` since acquisition, at least ``idle_days`` since the study was last read,
    and the series' modality among ``modalities`` (empty: any)."""

    tier: str
    after_days: float | None = None
    idle_days: float | None = None
    modalities: frozenset[str] = frozenset()


def _tables(text: str, setting: str) -> list[dict[str, Any]]:
    try:
        tables = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise TierError(f"{setting} is not an array of tables: {exc}") from exc
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TierError(f"{setting} is not an array of tables")
    return tables


def _checked(entry: dict[str, Any], kinds: dict[str, tuple[type, ...]], where: str) -> None:
    unknown = set(entry) - set(kinds)
    if unknown:
        raise TierError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    for key, value in entry.items():
        if not isinstance(value, kinds[key]) or isinstance(value, bool) != (bool in kinds[key]):
            raise TierError(f"{where}: {key} has the wrong type ({value!r})")


TIER_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "location": (str,),
    "storage_class": (str,),
    "needs_recall": (bool,),
    "recall_seconds": (int, float),
    "price_gb_month": (int, float),
    "price_gb_retrieved": (int, float),
}
RULE_KEYS: dict[str, tuple[type, ...]] = {
    "tier": (str,),
    "after_days": (int, float),
    "idle_days": (int, float),
    "modalities": (list,),
}


def parse_tiers(text: str) -> list[Tier]:
    """The storage_tiers setting; the first tier is where ingest places blobs (it must be
    the archive's blob store, location ""), and none needs a recall to be read."""
    tiers: list[Tier] = []
    for entry in _tables(text, "storage_tiers"):
        name = entry.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise TierError(f"storage_tiers entry {entry!r}: name must be a word")
        _checked(entry, TIER_KEYS, f"storage_tiers {name!r}")
        if any(t.name == name for t in tiers):
            raise TierError(f"storage_tiers: {name!r} is declared twice")
        tiers.append(Tier(**entry))
    if not tiers:
        return [Tier(DEFAULT_TIER)]
    first = tiers[0]
    if first.location or first.needs_recall:
        raise TierError(
            f"storage_tiers {first.name!r}: the first tier receives every new instance: it is "
            "the blob store itself (no location) and needs no recall"
        )
    return tiers


def parse_rules(text: str, tiers: list[Tier]) -> list[Rule]:
    """The tier_rules setting, each naming a declared tier."""
    names = {t.name for t in tiers}
    rules: list[Rule] = []
    for number, entry in enumerate(_tables(text, "tier_rules"), 1):
        where = f"tier_rules entry {number}"
        _checked(entry, RULE_KEYS, where)
        if entry.get("tier") not in names:
            raise TierError(f"{where}: tier must be one of {', '.join(sorted(names))}")
        modalities = entry.get("modalities", [])
        if not all(isinstance(m, str) for m in modalities):
            raise TierError(f"{where}: modalities must be a list of strings")
        rules.append(
            Rule(
                entry["tier"],
                entry.get("after_days"),
                entry.get("idle_days"),
                frozenset(m.upper() for m in modalities),
            )
        )
    return rules
