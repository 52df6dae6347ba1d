"""The peers table and the association checks, on real pynetdicom Association objects."""

from __future__ import annotations

import json

import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE, N_ACTION
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import AddressInformation

from dimse.admission import Admission, Rejection, operation_of
from dimse.peers import Operation, PeerError, network_of, parse_peers
from storage.access import PrincipalKind, Scope
from wsiarchive import settings

PEERS = [
    {
        "ae_title": "SCANNER",
        "host": "10.0.0.0/24",
        "operations": ["store", "commit"],
        "groups": ["pathology"],
    },
    {"ae_title": "VIEWER", "operations": ["find", "move", "get"]},
    {"ae_title": "ADMIN"},
]


def requested(calling: str, host: str = "10.0.0.5", called: str = "WSIARCHIVE") -> Association:
    """An association being requested of us, as pynetdicom's acceptor holds it."""
    association = Association(AE("WSIARCHIVE"), "acceptor")
    request = A_ASSOCIATE()
    request.calling_ae_title = calling
    request.called_ae_title = called
    association.requestor.primitive = request
    association.requestor.address_info = AddressInformation.from_tuple((host, 40000))
    return association


def admission(allow_any: bool = False, hosts: tuple[str, ...] = ()) -> Admission:
    peers = parse_peers(json.dumps(PEERS))
    return Admission("WSIARCHIVE", peers, allow_any, [network_of(h) for h in hosts])


def test_principal_of_a_known_peer() -> None:
    policy = admission()
    association = requested("SCANNER", "10.0.0.77")
    grant = policy.grant_of(association)
    assert grant is not None
    assert grant.operations == {Operation.STORE, Operation.COMMIT}
    principal = grant.principal
    assert principal.subject == "SCANNER" and principal.kind is PrincipalKind.AE
    assert principal.scopes == {Scope.WRITE}
    assert principal.groups == {"pathology"} and principal.studies is None
    assert principal.source == "SCANNER@10.0.0.77:40000"
    # Kept on the association once accepted (EVT_REQUESTED), gone for another one.
    assert policy.principal_of(association) is None
    policy.on_requested(type("Event", (), {"assoc": association})())
    assert policy.principal_of(association) == principal
    assert policy.principal_of(requested("SCANNER")) is None
    assert policy.may(association, Operation.STORE)
    assert not policy.may(association, Operation.FIND)


def test_viewer_reads_everything_and_admin_does_all() -> None:
    policy = admission()
    viewer = policy.grant_of(requested("VIEWER", "192.168.1.9"))
    assert viewer is not None and viewer.principal.scopes == {Scope.READ}
    assert viewer.principal.groups is None  # every access group
    admin = policy.grant_of(requested("ADMIN", "::1"))
    assert admin is not None and admin.operations == set(Operation)
    assert admin.principal.scopes == {Scope.READ, Scope.WRITE}


@pytest.mark.parametrize(
    ("calling", "host", "called", "why"),
    [
        ("INTRUDER", "10.0.0.5", "WSIARCHIVE", Rejection.CALLING_AE_NOT_RECOGNISED),
        ("SCANNER", "10.0.1.5", "WSIARCHIVE", Rejection.CALLING_AE_NOT_RECOGNISED),
        ("VIEWER", "10.0.0.5", "OTHERPACS", Rejection.CALLED_AE_NOT_RECOGNISED),
    ],
)
def test_rejections(calling: str, host: str, called: str, why: Rejection) -> None:
    policy = admission()
    association = requested(calling, host, called)
    assert policy.grant_of(association) is None
    assert policy.rejection(association) is why
    assert why.value[:2] == (1, 1)  # rejected-permanent, by the service-user (Table 9-21)


def test_allow_any_calling_ae_reads_and_writes_every_study() -> None:
    policy = admission(allow_any=True)
    grant = policy.grant_of(requested("ANYONE", "172.16.0.1"))
    assert grant is not None and grant.operations == set(Operation)
    assert grant.principal.scopes == {Scope.READ, Scope.WRITE} and grant.principal.unrestricted
    # A listed peer keeps its own narrower grant; the called AE is still checked.
    scanner = policy.grant_of(requested("SCANNER", "10.0.0.5"))
    assert scanner is not None and scanner.operations == {Operation.STORE, Operation.COMMIT}
    assert policy.rejection(requested("ANYONE", called="ELSEWHERE")) is not None


def test_hosts_admitted_at_connection() -> None:
    only_scanners = Admission("WSIARCHIVE", parse_peers(json.dumps(PEERS[:1])))
    assert only_scanners.admits_host("10.0.0.9")
    assert only_scanners.admits_host("::ffff:10.0.0.9")  # IPv4-mapped
    assert not only_scanners.admits_host("10.0.1.9")  # no peer can come from there
    assert admission().admits_host("8.8.8.8")  # VIEWER may come from anywhere
    assert not admission(hosts=("127.0.0.1",)).admits_host("10.0.0.5")
    assert admission(hosts=("10.0.0.0/8",)).admits_host("10.0.0.5")
    assert not Admission("WSIARCHIVE", []).admits_host("127.0.0.1")  # nobody is known


def test_every_request_primitive_has_its_operation() -> None:
    assert [operation_of(p()) for p in (C_ECHO, C_STORE, C_FIND, C_MOVE, C_GET, N_ACTION)] == [
        Operation.ECHO,
        Operation.STORE,
        Operation.FIND,
        Operation.MOVE,
        Operation.GET,
        Operation.COMMIT,
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"host": "10.0.0.1"}, "ae_title"),
        ({"ae_title": "A" * 17}, "ae_title"),
        ({"ae_title": "X", "operations": ["store", "delete"]}, "unknown operations delete"),
        ({"ae_title": "X", "host": "10.0.0.300"}, "not an IP address"),
        ({"ae_title": "X", "groups": "pathology"}, "list of strings"),
        ({"ae_title": "X", "port": 104}, "unknown keys port"),
    ],
)
def test_bad_peer_entries_are_refused(entry: dict, message: str) -> None:
    with pytest.raises(PeerError, match=message):
        parse_peers(json.dumps([entry]))


def test_peers_from_toml_tables_and_the_environment(tmp_path) -> None:
    config = tmp_path / "conf.toml"
    config.write_text(
        'ae_title = "ARCHIVE"\n\n[[dimse_peers]]\nae_title = "SCANNER"\nhost = "10.0.0.0/24"\n'
        'operations = ["store"]\n\n[[dimse_peers]]\nae_title = "VIEWER"\n'
    )
    loaded = settings.load(config, environ={})
    peers = parse_peers(loaded.dimse_peers)
    assert [p.ae_title for p in peers] == ["SCANNER", "VIEWER"]
    assert peers[0].operations == {Operation.STORE}
    # The workers get it back from the environment, unchanged.
    again = settings.load(environ=settings.to_environ(loaded))
    assert again.dimse_peers == loaded.dimse_peers
    with pytest.raises(ValueError, match="dimse_peers must be an array of tables"):
        settings.load(environ={"WSIARCHIVE_DIMSE_PEERS": '{"ae_title": "X"}'})
    assert settings.Settings().dimse_allow_any_calling_ae is False
