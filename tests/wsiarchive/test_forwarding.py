"""Forwarding in one process: the settings parsed and refused, rules matched on the change
feed into the outbox, the outbox's order, retries, give-ups and resends."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from storage.access import ALL_SCOPES, Principal, PrincipalKind
from storage.records import ForwardState
from tests.inprocess import multiframe, open_at, part10, store
from tests.servers import free_port
from wsiarchive.forwarding.config import Kind, parse_destinations, parse_rules
from wsiarchive.forwarding.forwarder import Forwarder, register


def _destinations(port: int) -> str:
    return json.dumps(
        [
            {"name": "web", "kind": "dicomweb", "url": f"http://127.0.0.1:{port}/dicomweb/"},
            {
                "name": "pacs",
                "kind": "dimse",
                "ae_title": "PACS",
                "host": "127.0.0.1",
                "port": port,
            },
        ]
    )


def test_destinations_and_rules_are_parsed() -> None:
    found = parse_destinations(_destinations(104))
    assert (
        found["web"].kind is Kind.DICOMWEB and found["web"].url == "http://127.0.0.1:104/dicomweb"
    )
    assert found["pacs"].kind is Kind.DIMSE and found["pacs"].port == 104
    rules = parse_rules(
        json.dumps([{"to": "web", "modality": ["SM", "O?"], "study_description": "*biopsy*"}]),
        found,
    )
    document = {
        "00080060": {"vr": "CS", "Value": ["OT"]},
        "00081030": {"vr": "LO", "Value": ["Liver BIOPSY left"]},
    }
    assert rules[0].matches(document)
    assert not rules[0].matches({"00080060": {"vr": "CS", "Value": ["OT"]}})  # no description
    assert not rules[0].matches(document | {"00080060": {"vr": "CS", "Value": ["CT"]}})
    assert parse_rules(json.dumps([{"to": ["web", "pacs"]}]), found)[0].matches({})


WEB = {"name": "a", "kind": "dicomweb", "url": "http://h/dicomweb"}
CLIENT = {"token_url": "https://idp/token", "client_id": "archive", "client_secret_file": "/s"}


def test_client_credentials_are_parsed() -> None:
    entry = {**WEB, **CLIENT, "scope": "write", "token_params": {"resource": "http://h", "n": 1}}
    client = parse_destinations(json.dumps([entry]))["a"].client
    assert client is not None
    assert (client.token_url, client.client_id, client.secret_file) == (
        "https://idp/token",
        "archive",
        "/s",
    )
    assert client.scope == "write" and client.auth_method == "client_secret_basic"
    assert client.params == (("n", "1"), ("resource", "http://h"))
    assert parse_destinations(json.dumps([WEB]))["a"].client is None


@pytest.mark.parametrize(
    ("destinations", "message"),
    [
        ([{"name": "a", "kind": "dicomweb", "url": "http://h/", "token": "x"}], "no inline token"),
        ([{"name": "a", "kind": "ftp"}], "kind is dicomweb or dimse"),
        ([{"name": "a", "kind": "dicomweb", "url": "h:80"}], "not an http"),
        ([{"name": "a", "kind": "dimse", "ae_title": "A", "host": "h"}], "host and port"),
        ([{"name": "a", "kind": "dimse", "ae_title": "X" * 17, "host": "h", "port": 1}], "ae_"),
        ([{"kind": "dimse"}], "needs a name"),
        ([{**WEB, **CLIENT, "client_secret": "s"}], "no inline client_secret"),
        ([{**WEB, **CLIENT, "token_file": "/t"}], "a token .* or client credentials"),
        ([{**WEB, **CLIENT, "token_url": "ftp://x"}], "token_url 'ftp://x' is not an http"),
        ([{**WEB, **CLIENT, "client_id": ""}], "need a client_id"),
        ([{**WEB, **CLIENT, "client_secret_env": "E"}], "one of client_secret_env and"),
        ([{**WEB, "token_url": "http://t/token", "client_id": "c"}], "one of client_secret_env"),
        ([{**WEB, **CLIENT, "token_auth": "private_key_jwt"}], "token_auth is client_secret_"),
        ([{**WEB, **CLIENT, "token_params": ["a"]}], "token_params is a table"),
    ],
)
def test_destinations_that_cannot_work_are_refused(destinations: list, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        parse_destinations(json.dumps(destinations))


def test_rules_naming_unknowns_are_refused() -> None:
    known = parse_destinations(_destinations(104))
    with pytest.raises(ValueError, match="unknown destination nowhere"):
        parse_rules(json.dumps([{"to": "nowhere"}]), known)
    with pytest.raises(ValueError, match="unknown conditions colour"):
        parse_rules(json.dumps([{"to": "web", "colour": "red"}]), known)


@pytest.mark.parametrize("index", ["sqlite", "postgresql"])
def test_rules_queue_new_instances_once_and_failures_back_off(
    tmp_path: Path, index: str, request: pytest.FixtureRequest
) -> None:
    values = {}
    if index == "postgresql":  # the outbox's statements on the other index backend
        cluster = request.getfixturevalue("postgres")
        values["database_url"] = cluster.database(f"forward_{uuid.uuid4().hex[:10]}")
    archive, _ = open_at(tmp_path, **values)
    before = store(archive, multiframe(1, seed=1))  # before the rules: never queued
    destinations = parse_destinations(_destinations(free_port()))  # nothing listens there
    rules = parse_rules(json.dumps([{"to": "web", "modality": "ot"}]), destinations)
    register(archive, rules)
    stored = [store(archive, multiframe(1, seed=n)) for n in (2, 3)]
    forwarder = Forwarder(archive, destinations, rules, max_backoff_seconds=60, max_attempts=2)
    assert forwarder.route()
    assert not forwarder.route()  # the cursor moved on: nothing queued twice
    due = archive.forward_due("web", 10)
    assert [item.instance for item in due] == [s.instance for s in stored]
    assert before.instance not in {item.instance for item in due}
    assert archive.enqueue_forward("web", [(s.study, s.series, s.instance) for s in stored]) == 0

    assert not forwarder.send(destinations["web"])  # connection refused
    head = archive.forward_items("web", ForwardState.PENDING, 10)[0]
    assert head.instance == stored[0].instance and head.attempts == 1 and head.reason
    assert head.retry_at is not None
    assert archive.forward_due("web", 10) == []  # the head waits: the queue keeps its order
    archive.forward_failed(head.pk, "refused again", None)  # the last of max_attempts
    assert [i.instance for i in archive.forward_due("web", 10)] == [stored[1].instance]
    (counts,) = archive.forward_counts()
    assert (counts.pending, counts.sent, counts.failed, counts.attempts) == (1, 0, 1, 2)

    second = archive.forward_due("web", 1)[0]
    assert archive.forward_sent(second.pk)
    assert not archive.forward_sent(second.pk)  # once: a sent row is not pending
    assert archive.forward_due("web", 10) == []
    # Asked for again (`wsiarchive send`): the failed and the sent one are pending anew.
    again = archive.enqueue_forward(
        "web", [(s.study, s.series, s.instance) for s in stored], again=True
    )
    assert again == 2
    assert [i.instance for i in archive.forward_due("web", 10)] == [s.instance for s in stored]
    archive.close()


def test_a_rule_on_the_calling_ae_title_of_the_c_store(tmp_path: Path) -> None:
    archive, _ = open_at(tmp_path)
    destinations = parse_destinations(_destinations(free_port()))
    rules = parse_rules(json.dumps([{"to": "pacs", "source_ae": ["scanner*"]}]), destinations)
    register(archive, rules)
    scanner = Principal("SCANNER3", PrincipalKind.AE, ALL_SCOPES)
    staged = archive.stage()
    staged.write(part10(multiframe(1, seed=7)))
    by_scanner = archive.ingest(staged, who=scanner)
    other = store(archive, multiframe(1, seed=8))  # STOW-RS, import: no calling AE title
    assert archive.stored_by([by_scanner.instance, other.instance]) == {
        by_scanner.instance: "SCANNER3",
        other.instance: "",
    }
    assert Forwarder(archive, destinations, rules).route()
    assert [i.instance for i in archive.forward_due("pacs", 10)] == [by_scanner.instance]
    archive.close()


def test_a_finished_forwarder_leaves_its_leases_to_the_next(tmp_path: Path) -> None:
    """`forward --once` and `send --now` end by releasing the router's and destinations'
    leases: a second forwarder run right after sends at once instead of waiting 30 s."""
    from wsiarchive.forwarding.forwarder import LEASE_SECONDS, ROUTER, lease_name

    archive, _ = open_at(tmp_path)
    destinations = parse_destinations(_destinations(free_port()))
    first = Forwarder(archive, destinations, [])
    second = Forwarder(archive, destinations, [])
    name = lease_name("web")
    assert archive.lease_cursor(name, first.holder, LEASE_SECONDS) is not None
    assert archive.lease_cursor(ROUTER, first.holder, LEASE_SECONDS) is not None
    assert archive.lease_cursor(name, second.holder, LEASE_SECONDS) is None  # held
    first.release()
    assert archive.lease_cursor(name, second.holder, LEASE_SECONDS) is not None
    assert archive.lease_cursor(ROUTER, second.holder, LEASE_SECONDS) is not None
    first.release()  # releasing what another holds changes nothing
    assert archive.lease_cursor(name, first.holder, LEASE_SECONDS) is None


def test_the_backoff_stays_capped_after_a_thousand_failures(tmp_path: Path) -> None:
    """A destination down for days (forward_max_attempts 0: retried for ever): past 1024
    attempts 2.0 ** attempts overflowed, the failure was never recorded and the head was
    retried at every poll. The wait stays forward_max_backoff_seconds."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    archive, _ = open_at(tmp_path)
    destinations = parse_destinations(_destinations(free_port()))
    rules = parse_rules(json.dumps([{"to": "web"}]), destinations)
    register(archive, rules)
    store(archive, multiframe(1, seed=9))
    forwarder = Forwarder(archive, destinations, rules, max_backoff_seconds=300)
    assert forwarder.route()
    [head] = archive.forward_due("web", 10)
    for attempts in (9, 1100, 10**6):
        assert not forwarder._outcome(destinations["web"], replace(head, attempts=attempts), "down")
        [again] = archive.forward_items("web", ForwardState.PENDING, 10)
        assert again.retry_at is not None
        wait = again.retry_at - datetime.now(UTC).replace(tzinfo=None)
        assert timedelta(seconds=290) < wait <= timedelta(seconds=300)
    archive.close()


def test_a_corrected_instance_is_forwarded_again(tmp_path: Path) -> None:
    """An instance sent, then corrected (docs/conformance.md §17) or overwritten: its update
    event queues it again (docs/operations.md: "each new or overwritten instance"), so that
    the destination is offered the corrected object; one that was never sent stays queued
    once."""
    from storage.dicom.corrections import from_assignments
    from tests.inprocess import TESTER

    archive, _ = open_at(tmp_path)
    destinations = parse_destinations(_destinations(free_port()))
    rules = parse_rules(json.dumps([{"to": "web"}]), destinations)
    register(archive, rules)
    sent = store(archive, multiframe(1, seed=11))
    forwarder = Forwarder(archive, destinations, rules)
    assert forwarder.route()
    [item] = archive.forward_due("web", 10)
    assert archive.forward_sent(item.pk)
    pending = store(archive, multiframe(1, seed=12))
    archive.update(sent.study, None, from_assignments(["PatientID=LIS-1"]), who=TESTER)
    archive.update(pending.study, None, from_assignments(["PatientID=LIS-2"]), who=TESTER)
    assert forwarder.route()
    due = archive.forward_due("web", 10)
    assert sorted(i.instance for i in due) == sorted([sent.instance, pending.instance])
    assert not forwarder.route()  # nothing queued twice
    assert len(archive.forward_due("web", 10)) == 2
    archive.close()


def test_a_correction_keeps_the_calling_ae_title_its_rules_match(tmp_path: Path) -> None:
    """An instance a scanner C-STOREd, forwarded by a source_ae rule, then corrected over
    HTTP or the CLI: it stays the scanner's (instance.stored_by), so the rule still matches
    its update event and the corrected object is queued again."""
    from storage.dicom.corrections import from_assignments
    from tests.inprocess import TESTER

    archive, _ = open_at(tmp_path)
    destinations = parse_destinations(_destinations(free_port()))
    rules = parse_rules(json.dumps([{"to": "pacs", "source_ae": "SCANNER*"}]), destinations)
    register(archive, rules)
    staged = archive.stage()
    staged.write(part10(multiframe(1, seed=13)))
    stored = archive.ingest(staged, who=Principal("SCANNER1", PrincipalKind.AE, ALL_SCOPES))
    forwarder = Forwarder(archive, destinations, rules)
    assert forwarder.route()
    [item] = archive.forward_due("pacs", 10)
    assert archive.forward_sent(item.pk)
    archive.update(stored.study, None, from_assignments(["PatientID=LIS-3"]), who=TESTER)
    assert archive.stored_by([stored.instance]) == {stored.instance: "SCANNER1"}
    assert forwarder.route()
    assert [i.instance for i in archive.forward_due("pacs", 10)] == [stored.instance]
    archive.close()
