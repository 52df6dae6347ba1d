"""The tiers of one archive at work: applying the rules, asking for and completing recalls,
and what each tier holds and costs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from storage.access import Principal
from storage.audit import AuditRecord, Operation
from storage.cache import Lru
from storage.index.tiers import Placed, TierIndex
from storage.tiers import moves
from storage.tiers.config import GIB, Rule, Tier
from storage.tiers.rules import wanted
from storage.tiers.store import ClassedStore, TieredBlobStore

log = logging.getLogger(__name__)
ASKED = 65536  # blobs whose asked-for recall this process remembers
ASKED_SECONDS = 60.0  # how long, before asking the index again
SYSTEM = "wsiarchive"  # the actor of a recall a read asked for


@dataclass(frozen=True)
class Move:
    """One blob planned (or done) to go from one tier to another."""

    study: str
    series: str
    instance: str
    source: str
    target: str
    size: int
    done: bool = False


@dataclass(frozen=True)
class TierReport:
    """What one tier holds and what that costs a month at the configured prices."""

    name: str
    storage_class: str
    needs_recall: bool
    instances: int
    bytes: int
    monthly_cost: float  # bytes in GiB x price_gb_month
    retrieval_cost: float  # of reading everything back once: GiB x price_gb_retrieved


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Tiers:
    """Rules, moves and recalls over a tiered store and the index."""

    def __init__(
        self,
        blobs: TieredBlobStore,
        index: TierIndex,
        rules: list[Rule],
        audit: Callable[[AuditRecord], None],
    ) -> None:
        self.blobs = blobs
        self.index = index
        self.rules = rules
        self._audit = audit
        self._asked: Lru[str, datetime] = Lru(ASKED, ttl=ASKED_SECONDS)

    def tier_of(self, placed: Placed) -> Tier:
        return self.blobs.tiers.get(placed.tier or self.blobs.first.name) or self.blobs.first

    # -- rules -----------------------------------------------------------------------------------
    def _planned(self, now: datetime) -> list[tuple[Placed, Tier, str]]:
        """Each blob the rules want elsewhere, its tier and the tier wanted. A blob in a tier
        that needs a recall leaves it only by a recall."""
        planned = []
        for placed in self.index.placed():
            current = self.tier_of(placed)
            if current.needs_recall:
                continue
            target = wanted(self.rules, placed, now)
            if target is not None and target != current.name:
                planned.append((placed, current, target))
        return planned

    def apply(self, who: Principal, dry_run: bool = False) -> list[Move]:
        """Carry out the moves the rules want (none with *dry_run*); returns them."""
        planned = self._planned(_now())
        if dry_run:
            return [_move(placed, current.name, target) for placed, current, target in planned]
        done = []
        for placed, current, target in planned:
            moved = moves.move(self.blobs, self.index, placed, self.blobs.tiers[target])
            done.append(_move(placed, current.name, target, moved))
            state = "moved" if moved else "left (changed meanwhile)"
            log.info("%s %s: tier %s -> %s", state, placed.blob_key, current.name, target)
        self._audit_moves(who, Operation.TIER_MOVE, done)
        return done

    # -- recalls ---------------------------------------------------------------------------------
    def asked(self, key: str, tier: Tier) -> float:
        """A read met *key* in *tier*, which needs a recall: the recall is recorded (and
        started, once); returns the seconds it should take still."""
        now = _now()
        since = self._asked.get(key)
        if since is None:
            since = self.index.ask_recall(key, now) or now
            self._asked.put(key, since)
            if since == now:
                self._start(key, tier, None)
        return max(1.0, (since - now).total_seconds() + tier.recall_seconds)

    def recall(self, study: str, who: Principal) -> int:
        """Ask for every blob of *study* in a tier that needs a recall; returns how many."""
        now, count = _now(), 0
        for placed in self.index.placed(study):
            tier = self.tier_of(placed)
            if tier.needs_recall and placed.recall_requested_at is None:
                self.index.ask_recall(placed.blob_key, now)
                self._start(placed.blob_key, tier, who)
                count += 1
        self.index.touch(study, now)  # so that idle rules do not send it straight back
        return count

    def _start(self, key: str, tier: Tier, who: Principal | None) -> None:
        store, raw = self.blobs.physical(key)
        if isinstance(store, ClassedStore):
            store.start_recall(raw)
        log.info("recall of %s from tier %s started", key, tier.name)
        placed = next(iter(self._by_key(key)), None)
        if placed is not None:
            self._audit_one(who, Operation.RECALL, placed, f"recall from {tier.name} started")

    def _by_key(self, key: str) -> Iterable[Placed]:
        return [p for p in self.index.placed(recalls_only=True) if p.blob_key == key]

    def complete(self, who: Principal, now: datetime | None = None) -> list[Move]:
        """Move back to the first tier every asked-for blob whose recall is done (for a
        store without storage classes: once ``recall_seconds`` have passed)."""
        now = now or _now()
        done = []
        for placed in self.index.placed(recalls_only=True):
            tier = self.tier_of(placed)
            if not tier.needs_recall or placed.recall_requested_at is None:
                continue
            store, raw = self.blobs.physical(placed.blob_key)
            if isinstance(store, ClassedStore):
                ready = store.recall_ready(raw)
            else:
                ready = now - placed.recall_requested_at >= timedelta(seconds=tier.recall_seconds)
            if not ready:
                continue
            moved = moves.move(self.blobs, self.index, placed, self.blobs.first)
            done.append(_move(placed, tier.name, self.blobs.first.name, moved))
            log.info("recall of %s from tier %s done", placed.blob_key, tier.name)
        self._audit_moves(who, Operation.RECALL, done)
        return done

    # -- reporting -------------------------------------------------------------------------------
    def report(self) -> list[TierReport]:
        """Every configured tier (and any tier the index names that is no longer), in order."""
        found = {u.tier or self.blobs.first.name: u for u in self.index.usage()}
        names = list(self.blobs.tiers) + sorted(set(found) - set(self.blobs.tiers))
        reports = []
        for name in names:
            tier = self.blobs.tiers.get(name, Tier(name))
            usage = found.get(name)
            size = usage.bytes if usage else 0
            reports.append(
                TierReport(
                    name,
                    tier.storage_class,
                    tier.needs_recall,
                    usage.instances if usage else 0,
                    size,
                    size / GIB * tier.price_gb_month,
                    size / GIB * tier.price_gb_retrieved,
                )
            )
        return reports

    # -- audit -----------------------------------------------------------------------------------
    def _audit_moves(self, who: Principal, operation: Operation, done: list[Move]) -> None:
        by_study: dict[tuple[str, str, str], int] = {}
        for item in done:
            if item.done:
                key = (item.study, item.source, item.target)
                by_study[key] = by_study.get(key, 0) + 1
        for (study, source, target), count in by_study.items():
            self._audit(
                AuditRecord(
                    _now(),
                    who.subject,
                    who.kind.value,
                    who.source,
                    operation,
                    study=study,
                    detail=f"{count} instances from tier {source} to {target}",
                )
            )

    def _audit_one(
        self, who: Principal | None, operation: Operation, placed: Placed, detail: str
    ) -> None:
        actor, kind, source = (
            (who.subject, who.kind.value, who.source) if who else (SYSTEM, "local", "read")
        )
        self._audit(
            AuditRecord(
                _now(),
                actor,
                kind,
                source,
                operation,
                placed.study,
                placed.series,
                placed.instance,
                detail=detail,
            )
        )


def _move(placed: Placed, source: str, target: str, done: bool = False) -> Move:
    return Move(placed.study, placed.series, placed.instance, source, target, placed.size, done)
