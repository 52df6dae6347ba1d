"""Audit messages against the PS3.15 A.5.1 schema and the A.5.3 event definitions."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from lxml import etree

from storage.audit import AuditRecord, Operation
from tests.wsiarchive.audit.schema import schema_errors
from wsiarchive.audit.messages import AuditSource, audit_message

SOURCE = AuditSource("WSIARCHIVE@test", "Pathology", "archive.example.org")
STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"
INSTANCE = "1.2.826.0.1.3680043.8.498.3"
AT = datetime(2026, 3, 4, 5, 6, 7, 890123)

# PS3.15 A.5.3, written out here independently of wsiarchive.audit.messages.EVENTS:
# operation -> (EventID, EventActionCode, the user's RoleIDCode, the archive's RoleIDCode).
EXPECTED = {
    Operation.SEARCH: ("110112", "E", "110153", "110152"),  # A.5.3.10 Query
    Operation.RETRIEVE: ("110103", "R", None, None),  # A.5.3.6 Instances Accessed
    Operation.STORE: ("110104", "C", "110153", "110152"),  # A.5.3.7 Transferred
    Operation.SEND: ("110104", "R", "110152", "110153"),
    Operation.DELETE: ("110103", "D", None, None),
    Operation.UPDATE: ("110103", "U", None, None),  # attributes corrected after ingest
    Operation.EXPORT: ("110106", "R", None, None),  # A.5.3.4 Data Export
    Operation.LOGIN: ("110114", "E", None, None),  # A.5.3.12 User Authentication
    Operation.SECURITY: ("110113", "E", None, None),  # A.5.3.11 Security Alert
    Operation.TIER_MOVE: ("110103", "U", None, None),  # storage tiers: moved to another store
    Operation.RECALL: ("110103", "E", None, None),  # asked back from a tier needing a recall
}


def record(operation: Operation, **fields: object) -> AuditRecord:
    values: dict[str, object] = {
        "at": AT,
        "actor": "alice",
        "actor_kind": "user",
        "source": "192.0.2.7",
        "operation": operation,
        "study": STUDY,
        "series": SERIES,
        "instance": INSTANCE,
        "outcome": 200,
        "success": True,
        "detail": "",
        "pk": 1,
    }
    values.update(fields)
    return AuditRecord(**values)  # type: ignore[arg-type]


def parse(document: bytes) -> etree._Element:
    assert schema_errors(document) == []
    return etree.fromstring(document)


def test_every_operation_has_an_expected_event():
    assert set(EXPECTED) == set(Operation)


@pytest.mark.parametrize("operation", list(Operation), ids=str)
def test_message_per_operation(operation):
    event_id, action, user_role, archive_role = EXPECTED[operation]
    detail = "/studies?PatientID=P%201" if operation is Operation.SEARCH else "why"
    root = parse(audit_message(record(operation, detail=detail), SOURCE))
    identification = root.find("EventIdentification")
    assert identification.get("EventActionCode") == action
    assert identification.get("EventDateTime") == "2026-03-04T05:06:07.890123Z"
    assert identification.get("EventOutcomeIndicator") == "0"
    code = identification.find("EventID")
    assert (code.get("csd-code"), code.get("codeSystemName")) == (event_id, "DCM")

    participants = root.findall("ActiveParticipant")
    user, archive = participants[0], participants[1]
    assert user.get("UserID") == "alice" and user.get("UserIsRequestor") == "true"
    assert user.get("NetworkAccessPointID") == "192.0.2.7"
    assert user.get("NetworkAccessPointTypeCode") == "2"
    assert archive.get("UserID") == SOURCE.source_id
    assert archive.get("UserIsRequestor") == "false"
    assert archive.get("NetworkAccessPointTypeCode") == "1"
    assert [p.get("UserIsRequestor") for p in participants].count("true") == 1  # A.5.2
    for participant, role in ((user, user_role), (archive, archive_role)):
        codes = [c.get("csd-code") for c in participant.findall("RoleIDCode")]
        assert codes == ([role] if role else [])

    audit_source = root.find("AuditSourceIdentification")
    assert audit_source.get("AuditSourceID") == SOURCE.source_id
    assert audit_source.get("AuditEnterpriseSiteID") == "Pathology"

    objects = root.findall("ParticipantObjectIdentification")
    studies = [
        o for o in objects if o.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"
    ]
    if operation is Operation.LOGIN:
        assert objects == []  # A.5.3.12: no participant objects
        return
    (study,) = studies
    assert study.get("ParticipantObjectID") == STUDY
    assert study.get("ParticipantObjectTypeCode") == "2"
    assert study.get("ParticipantObjectTypeCodeRole") == "3"
    assert study.find("ParticipantObjectDescription/SOPClass/Instance").get("UID") == INSTANCE


def test_query_carries_the_query_base64():
    query = "/studies?PatientID=P%201&ModalitiesInStudy=SM"
    root = parse(audit_message(record(Operation.SEARCH, study="", detail=query), SOURCE))
    (query_object,) = root.findall("ParticipantObjectIdentification")
    assert query_object.get("ParticipantObjectID") == "/studies"
    assert query_object.get("ParticipantObjectTypeCodeRole") == "3"  # A.5.3.10: Report
    encoded = query_object.find("ParticipantObjectQuery").text
    assert base64.b64decode(encoded).decode() == query


def test_login_and_security_alert_have_their_event_types():
    login = parse(audit_message(record(Operation.LOGIN, study=""), SOURCE))
    assert login.find("EventIdentification/EventTypeCode").get("csd-code") == "110122"
    alert = parse(audit_message(record(Operation.SECURITY, success=False, outcome=403), SOURCE))
    assert alert.find("EventIdentification/EventTypeCode").get("csd-code") == "110132"
    detail = alert.find("ParticipantObjectIdentification/ParticipantObjectDetail")
    assert detail.get("type") == "Alert Description"  # A.5.3.11: mandatory


def test_export_names_the_destination_media():
    root = parse(audit_message(record(Operation.EXPORT, detail="s3://bucket/x"), SOURCE))
    media = root.findall("ActiveParticipant")[-1]
    assert media.find("RoleIDCode").get("csd-code") == "110154"
    assert media.get("UserID") == "s3://bucket/x"


@pytest.mark.parametrize(
    ("status", "indicator"),
    [(400, "4"), (403, "4"), (0xC000, "4"), (0x0124, "4"), (500, "8"), (0xA700, "8")],
)
def test_failure_outcomes(status, indicator):
    root = parse(audit_message(record(Operation.RETRIEVE, success=False, outcome=status), SOURCE))
    identification = root.find("EventIdentification")
    assert identification.get("EventOutcomeIndicator") == indicator
    assert identification.find("EventOutcomeDescription").text.startswith(f"status {status}")


def test_ae_title_source_and_unicode_actor():
    message = audit_message(
        record(Operation.STORE, actor="Jürgen", source="MODALITY@10.0.0.9"), SOURCE
    )
    user = parse(message).find("ActiveParticipant")
    assert user.get("UserID") == "Jürgen"
    assert user.get("NetworkAccessPointID") == "10.0.0.9"


def test_the_schema_rejects_what_it_should():
    """The validator is real: a message broken in one place fails it."""
    good = audit_message(record(Operation.RETRIEVE), SOURCE)
    assert schema_errors(good) == []
    for broken in (
        good.replace(b'EventActionCode="R"', b'EventActionCode="X"'),
        good.replace(b'UserIsRequestor="true"', b""),
        good.replace(b"AuditSourceID=", b"SourceID="),
    ):
        assert schema_errors(broken)


@pytest.mark.parametrize("operation", [Operation.RETRIEVE, Operation.STORE, Operation.EXPORT])
def test_the_patient_is_a_participant_of_instance_events(operation: Operation) -> None:
    # PS3.15 A.5.3.4, A.5.3.6, A.5.3.7: Patient (TypeCode 1, Role 1, ID type 2).
    message = parse(
        audit_message(record(operation, patient_id="P-0042", patient_name="Doe^Jane"), SOURCE)
    )
    (patient,) = message.xpath("ParticipantObjectIdentification[@ParticipantObjectTypeCode='1']")
    assert patient.get("ParticipantObjectID") == "P-0042"
    assert patient.get("ParticipantObjectTypeCodeRole") == "1"
    assert patient.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"
    assert patient.findtext("ParticipantObjectName") == "Doe^Jane"
    without = parse(audit_message(record(operation), SOURCE))
    assert not without.xpath("ParticipantObjectIdentification[@ParticipantObjectTypeCode='1']")


def test_a_whole_study_deleted_is_study_deleted():
    """PS3.15 A.5.3.8 DICOM Study Deleted (110105) for a study; a series or an instance
    deleted stays A.5.3.6 DICOM Instances Accessed with action D."""
    root = parse(
        audit_message(record(Operation.DELETE, series="", instance="", outcome=204), SOURCE)
    )
    identification = root.find("EventIdentification")
    assert identification.find("EventID").get("csd-code") == "110105"
    assert identification.get("EventActionCode") == "D"
    (study,) = root.findall("ParticipantObjectIdentification")
    assert study.get("ParticipantObjectID") == STUDY
    series = parse(audit_message(record(Operation.DELETE, instance=""), SOURCE))
    assert series.find("EventIdentification/EventID").get("csd-code") == "110103"
