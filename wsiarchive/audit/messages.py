"""DICOM Audit Messages (PS3.15 A.5, the IHE ATNA vocabulary) built from audit records."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from xml.etree import ElementTree as ET

from storage.audit import AuditRecord, Operation


@dataclass(frozen=True)
class Code:
    """A coded value: csd-code, codeSystemName, originalText (PS3.15 A.5.1 CodedValueType)."""

    code: str
    system: str
    meaning: str

    def element(self, parent: ET.Element, tag: str) -> ET.Element:
        attributes = {"csd-code": self.code, "codeSystemName": self.system}
        return ET.SubElement(parent, tag, {**attributes, "originalText": self.meaning})


def dcm(code: str, meaning: str) -> Code:
    return Code(code, "DCM", meaning)


class Action(StrEnum):
    """EventActionCode (PS3.15 A.5.2)."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Role(StrEnum):
    """Who a participant is in an event, named after the RoleIDCode it gets, if any."""

    SOURCE = "110153"  # Source Role ID
    DESTINATION = "110152"  # Destination Role ID
    MEDIA = "110154"  # Destination Media
    NONE = ""


ROLE_CODES = {
    Role.SOURCE: dcm("110153", "Source Role ID"),
    Role.DESTINATION: dcm("110152", "Destination Role ID"),
    Role.MEDIA: dcm("110154", "Destination Media"),
}


@dataclass(frozen=True)
class Event:
    """How an operation is reported: its PS3.15 A.5.3 event, action, and the roles of the
    requesting user and of the archive."""

    event_id: Code
    action: Action
    user: Role
    archive: Role


# One row per Operation (storage.audit): PS3.15 A.5.3.10 Query, A.5.3.6 DICOM Instances
# Accessed, A.5.3.7 DICOM Instances Transferred, A.5.3.4 Data Export, A.5.3.12 User
# Authentication, A.5.3.11 Security Alert.
EVENTS: dict[Operation, Event] = {
    Operation.SEARCH: Event(dcm("110112", "Query"), Action.EXECUTE, Role.SOURCE, Role.DESTINATION),
    Operation.RETRIEVE: Event(
        dcm("110103", "DICOM Instances Accessed"), Action.READ, Role.NONE, Role.NONE
    ),
    Operation.STORE: Event(
        dcm("110104", "DICOM Instances Transferred"), Action.CREATE, Role.SOURCE, Role.DESTINATION
    ),
    Operation.SEND: Event(
        dcm("110104", "DICOM Instances Transferred"), Action.READ, Role.DESTINATION, Role.SOURCE
    ),
    Operation.DELETE: Event(
        dcm("110103", "DICOM Instances Accessed"), Action.DELETE, Role.NONE, Role.NONE
    ),
    # Attributes corrected after ingest (storage.update): the objects change, same UIDs.
    Operation.UPDATE: Event(
        dcm("110103", "DICOM Instances Accessed"), Action.UPDATE, Role.NONE, Role.NONE
    ),
    Operation.EXPORT: Event(dcm("110106", "Export"), Action.READ, Role.NONE, Role.NONE),
    Operation.LOGIN: Event(
        dcm("110114", "User Authentication"), Action.EXECUTE, Role.NONE, Role.NONE
    ),
    Operation.SECURITY: Event(
        dcm("110113", "Security Alert"), Action.EXECUTE, Role.NONE, Role.NONE
    ),
    # Storage tiers: the instances' bytes are copied to another store (A.5.3.6 with action
    # Update: the stored object changes place, not content), or a recall of them is asked
    # for or done (Execute).
    Operation.TIER_MOVE: Event(
        dcm("110103", "DICOM Instances Accessed"), Action.UPDATE, Role.NONE, Role.NONE
    ),
    Operation.RECALL: Event(
        dcm("110103", "DICOM Instances Accessed"), Action.EXECUTE, Role.NONE, Role.NONE
    ),
}
# A.5.3.8 DICOM Study Deleted: "the deletion of one or more studies and all associated SOP
# Instances in a single action" (a whole study; a series or an instance deleted is A.5.3.6,
# DICOM Instances Accessed, which covers instances "viewed, utilized, updated, or deleted").
STUDY_DELETED = Event(dcm("110105", "DICOM Study Deleted"), Action.DELETE, Role.NONE, Role.NONE)
LOGIN = dcm("110122", "Login")  # A.5.3.12 EventTypeCode
# A.5.3.11 EventTypeCode (CID 403): a change of tokens or settings, or a refused use.
SECURITY_CONFIGURATION = dcm("110129", "Security Configuration")
RESTRICTED_FUNCTION = dcm("110132", "Use of Restricted Function")
STUDY_INSTANCE_UID = dcm("110180", "Study Instance UID")
NODE_ID = dcm("110182", "Node ID")
URI = Code("12", "RFC-3881", "URI")
APPLICATION_SERVER = "4"  # A.5.1.2.1 Audit Source Type Code: application server process


class Outcome(StrEnum):
    """EventOutcomeIndicator (PS3.15 A.5.2)."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"  # the request was refused; the client may retry it corrected
    SERIOUS_FAILURE = "8"  # the archive failed


def outcome(record: AuditRecord) -> Outcome:
    """The outcome of a record from its wire status: HTTP 4xx (RFC 9110 15.5) and the DIMSE
    statuses that blame the request (PS3.7 C: 0122 SOP Class not supported, 0124 not
    authorized, A900 and Cxxx identifier/data set errors) are minor, the rest serious."""
    if record.success:
        return Outcome.SUCCESS
    status = record.outcome
    if 400 <= status <= 499 or status in (0x0122, 0x0124, 0xA900) or 0xC000 <= status <= 0xCFFF:
        return Outcome.MINOR_FAILURE
    return Outcome.SERIOUS_FAILURE


@dataclass(frozen=True)
class AuditSource:
    """The archive as it names itself in its messages."""

    source_id: str  # AuditSourceID, also the archive's UserID
    enterprise_site_id: str = ""
    hostname: str = ""  # the archive's NetworkAccessPointID


def _access_point(value: str) -> dict[str, str]:
    """NetworkAccessPointID/TypeCode (A.5.2): 2 for an IP address, 1 for a machine name."""
    if not value:
        return {}
    host = value.rsplit("@", 1)[-1]  # "AE@host" from the DICOM front door
    try:
        ipaddress.ip_address(host.strip("[]"))
        kind = "2"
    except ValueError:
        kind = "1"
    return {"NetworkAccessPointID": host, "NetworkAccessPointTypeCode": kind}


def _participant(
    parent: ET.Element,
    user_id: str,
    requestor: bool,
    role: Role,
    access_point: str,
    alternative: str = "",
) -> ET.Element:
    attributes = {"UserID": user_id or "unknown"}
    if alternative:
        attributes["AlternativeUserID"] = alternative
    attributes["UserIsRequestor"] = "true" if requestor else "false"
    attributes.update(_access_point(access_point))
    element = ET.SubElement(parent, "ActiveParticipant", attributes)
    if role is not Role.NONE:
        ROLE_CODES[role].element(element, "RoleIDCode")
    return element


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _detail(parent: ET.Element, kind: str, value: str) -> None:
    ET.SubElement(parent, "ParticipantObjectDetail", {"type": kind, "value": _b64(value)})


def _study(parent: ET.Element, record: AuditRecord) -> None:
    """The study: system object (2), report (3), ID type 110180 (A.5.3.6, A.5.3.7)."""
    element = ET.SubElement(
        parent,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": record.study,
            "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3",
        },
    )
    STUDY_INSTANCE_UID.element(element, "ParticipantObjectIDTypeCode")
    # A.5.1.1 requires a name or a query; the record knows no study description.
    ET.SubElement(element, "ParticipantObjectName")
    if record.series:
        _detail(element, "SeriesInstanceUID", record.series)
    if record.instance:
        description = ET.SubElement(element, "ParticipantObjectDescription")
        # The SOP Class UID is not in the record: the SOPClass element without its UID.
        sop_class = ET.SubElement(description, "SOPClass", {"NumberOfInstances": "1"})
        ET.SubElement(sop_class, "Instance", {"UID": record.instance})


PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")


def _patient(parent: ET.Element, record: AuditRecord) -> None:
    """The patient: person (1), patient (1), ID type 2 Patient Number (A.5.3.4, A.5.3.6,
    A.5.3.7: "Patient", mandatory)."""
    element = ET.SubElement(
        parent,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": record.patient_id,
            "ParticipantObjectTypeCode": "1",
            "ParticipantObjectTypeCodeRole": "1",
        },
    )
    PATIENT_NUMBER.element(element, "ParticipantObjectIDTypeCode")
    ET.SubElement(element, "ParticipantObjectName").text = record.patient_name or None


def _query(parent: ET.Element, record: AuditRecord) -> None:
    """The query (A.5.3.10): system object (2), report (3). The record's query is the
    protocol's own (a QIDO-RS request target, C-FIND keys), not a data set, so it is
    identified as a URI and carried as is, base64 encoded."""
    target = record.detail.split("?", 1)[0] if record.detail else ""
    element = ET.SubElement(
        parent,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": target or record.operation.value,
            "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3",
        },
    )
    URI.element(element, "ParticipantObjectIDTypeCode")
    ET.SubElement(element, "ParticipantObjectQuery").text = _b64(record.detail)


def _alert_subject(parent: ET.Element, record: AuditRecord, source: AuditSource) -> None:
    """The subject of a security alert (A.5.3.11): the archive's node, with the record's
    detail as the mandatory "Alert Description"."""
    element = ET.SubElement(
        parent,
        "ParticipantObjectIdentification",
        {"ParticipantObjectID": source.source_id, "ParticipantObjectTypeCode": "2"},
    )
    NODE_ID.element(element, "ParticipantObjectIDTypeCode")
    ET.SubElement(element, "ParticipantObjectName").text = source.source_id
    _detail(element, "Alert Description", record.detail or record.operation.value)


def audit_message(record: AuditRecord, source: AuditSource) -> bytes:
    """The record as a PS3.15 A.5.1 AuditMessage document, UTF-8 XML."""
    event = EVENTS[record.operation]
    if record.operation is Operation.DELETE and not record.series and not record.instance:
        event = STUDY_DELETED
    root = ET.Element("AuditMessage")
    identification = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": event.action.value,
            # A.5.2: UTC; the record's time is naive UTC.
            "EventDateTime": record.at.replace(tzinfo=None).isoformat(timespec="microseconds")
            + "Z",
            "EventOutcomeIndicator": outcome(record).value,
        },
    )
    event.event_id.element(identification, "EventID")
    if record.operation is Operation.LOGIN:
        LOGIN.element(identification, "EventTypeCode")
    elif record.operation is Operation.SECURITY:
        kind = SECURITY_CONFIGURATION if record.success else RESTRICTED_FUNCTION
        kind.element(identification, "EventTypeCode")
    if not record.success:
        ET.SubElement(identification, "EventOutcomeDescription").text = (
            f"status {record.outcome}" + (f": {record.detail}" if record.detail else "")
        )

    _participant(root, record.actor, True, event.user, record.source, record.actor_kind)
    _participant(root, source.source_id, False, event.archive, source.hostname)
    if record.operation is Operation.EXPORT:
        # A.5.3.4: the destination media, here the export's destination as detailed.
        _participant(root, record.detail or "export", False, Role.MEDIA, "")

    audit_source = {"AuditSourceID": source.source_id}
    if source.enterprise_site_id:
        audit_source["AuditEnterpriseSiteID"] = source.enterprise_site_id
    source_element = ET.SubElement(root, "AuditSourceIdentification", audit_source)
    ET.SubElement(source_element, "AuditSourceTypeCode", {"csd-code": APPLICATION_SERVER})

    if record.operation is Operation.SEARCH:
        _query(root, record)
    elif record.operation is Operation.SECURITY:
        _alert_subject(root, record, source)
    if record.study and record.operation is not Operation.LOGIN:
        _study(root, record)
        if record.patient_id:
            _patient(root, record)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
