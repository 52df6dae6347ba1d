"""PS3.15 Table E.1-1, Application Level Confidentiality Profile Attributes: the action of each
attribute under the Basic Profile and the options this archive offers.

The Basic Profile column is dicom-anonymizer's encoding of the table (edition 2026c, scraped
from the standard; checked against edition 2026d in tests/wsiarchive/test_export.py, and
completed by BASIC_ADDED where it lacks a 2026d row). That library encodes
no option column, so each option's column is written below as data, one Column each: "Rtn.
UIDs Opt.", "Rtn. Dev. Id. Opt.", "Clean Desc. Opt." and the two "Rtn. Long." columns from the
2026d table; "Rtn. Inst. Id. Opt.", "Rtn. Pat. Chars. Opt.", "Clean Struct. Cont. Opt.",
"Clean Graph. Opt." and "Rtn. Safe Priv. Opt." from the 2024b table (the newest whose option
columns were at hand in machine-readable form): a row added to the standard since has its
Basic Profile action under those options (removal, never a leak). An attribute several
chosen options name takes the most retaining of their actions: K, then C, then the Basic
Profile's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from functools import cache

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_VR
from pydicom.tag import BaseTag

EDITION = "dicomfields_2026c"  # dicom-anonymizer's newest encoding of Table E.1-1
# dicom-anonymizer's categories -> the action code of Table E.1-1a.
CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}

# Rows of the 2026d table that dicom-anonymizer's 2026c encoding lacks (found by the test of
# the option columns): Dose Calculation Model Name.
BASIC_ADDED = {0x3004007F: "X"}
# Retain Device Identity Option (PS3.15 E.3.8): the rows whose "Rtn. Dev. Id. Opt." is K ...
DEVICE_KEEP = frozenset(
    (
        0x300C0127, 0x0014407E, 0x00181203, 0x0014407C, 0x00181007, 0x00181205, 0x00181200,
        0x0018700C, 0x00181204, 0x00181202, 0x0018700A, 0x00500020, 0x3010002D, 0x00181000,
        0x00181002, 0x00181008, 0x00181005, 0x00181011, 0x0016004F, 0x00160050, 0x00160051,
        0x0016004E, 0x0018100B, 0x30100043, 0x00203401, 0x04000563, 0x00404030, 0x00400242,
        0x00404028, 0x00181004, 0x00400011, 0x00404027, 0x00400010, 0x00404025, 0x00321020,
        0x00181010, 0x300A0216, 0x30080105, 0x00081010, 0x00181201, 0x0018700E, 0x00185011,
        0x300A00B2, 0x0018100A, 0x00181009, 0x00189371, 0x00189373, 0x00189367,
    )
)  # fmt: skip
# ... and those whose "Rtn. Dev. Id. Opt." is C (AE titles and network names).
DEVICE_CLEAN = frozenset(
    (
        0x21000140, 0x00081000, 0x21000070, 0x00400241, 0x00741234, 0x00741236, 0x00080054,
        0x00400001, 0x00321021, 0x0072005E, 0x00080055,
    )
)  # fmt: skip
# Clean Descriptors Option (PS3.15 E.3.5): the rows whose "Clean Desc. Opt." is C.
DESCRIPTORS = frozenset(
    (
        0x00184000, 0x00400556, 0x00181400, 0x001811BB, 0x00189424, 0x001021B0, 0x00081084,
        0x00081080, 0x00102110, 0x006A0006, 0x006A0005, 0x300A00C3, 0x300A00DD, 0x003A020C,
        0x003A0203, 0x00120072, 0x00120051, 0x00400310, 0x00400280, 0x300A02EB, 0x3010000F,
        0x30100017, 0x0040051A, 0x00180010, 0x0018A003, 0x0018937F, 0x00082111, 0x0016004B,
        0x300A079A, 0x3004007F, 0x300A0016, 0x30100037, 0x30100035, 0x30100038, 0x30100036,
        0x300A0676, 0x003A032B, 0x300A0196, 0x3010007F, 0x300A0072, 0x00209158, 0x00100045,
        0x00081304, 0x00084000, 0x00204000, 0x00402400, 0x40080300, 0x300A0742, 0x300A0783,
        0x40080115, 0x4008010B, 0x22000002, 0x00500021, 0x0016002B, 0x00102000, 0x0040B03F,
        0x0040B03B, 0x0018937B, 0x003A0020, 0x00102180, 0x00104000, 0x300A0794, 0x00380500,
        0x300A0792, 0x300A078E, 0x00400254, 0x30020123, 0x30020121, 0x300A000E, 0x3010007B,
        0x30100081, 0x00081302, 0x00081301, 0x30100061, 0x00100016, 0x00181030, 0x00081088,
        0x00200027, 0x300A0619, 0x300A0623, 0x300A067D, 0x300A067C, 0x300C0113, 0x0040100A,
        0x00321030, 0x3010005C, 0x04000565, 0x00402001, 0x00401002, 0x00321066, 0x00321067,
        0x00400275, 0x00321070, 0x00401400, 0x00321060, 0x00189937, 0x00321033, 0x00189185,
        0x40084000, 0x30060028, 0x30060038, 0x30060026, 0x30060088, 0x30060085, 0x3010005A,
        0x300A0004, 0x300A0002, 0x300A0003, 0x30100054, 0x300A062A, 0x30100056, 0x00400007,
        0x00081303, 0x00720066, 0x00720068, 0x0072006C, 0x0072006E, 0x00720070, 0x0008103E,
        0x00380062, 0x300A01B2, 0x00100042, 0x300A01A6, 0x00400602, 0x00400600, 0x30060006,
        0x30060002, 0x30060004, 0x00324000, 0x00081030, 0x300A0608, 0x30100077, 0x300A000B,
        0x3010007A, 0x300A0734, 0x00700006, 0x30100033, 0x30100034, 0x00384000, 0x003A0329,
    )
)  # fmt: skip
# Retain Longitudinal Temporal Information with Modified Dates (PS3.15 E.3.6): every date and
# time row of the table is C, and so are these of other VRs.
# Retain Longitudinal Temporal Information with Full Dates (E.3.6) keeps the same rows (K).
# Certified Timestamp and Frame Origin Timestamp are OB: C cannot clean them (they are removed).
TEMPORAL_OTHER = frozenset(
    (0x00080201, 0x00080106, 0x00080107, 0x00189623, 0x04000310, 0x00340007)
)  # fmt: skip
TEMPORAL_VRS = frozenset(("DA", "DT", "TM"))
# Safe only under Retain UIDs: the rows whose "Rtn. UIDs Opt." is K but that are not U.
UID_KEEP_OTHER = frozenset((0x006A0003, 0x00001000, 0x00081120, 0x00081111, 0x00081110))
UID_NEVER_KEPT = frozenset((0x04000100, 0x0040A124))  # Digital Signature UID, UID: U, no K
# Patient's Birth Date and Time, GPS Time Stamp: no C under Modified Dates (replaced anyway).
TEMPORAL_NEVER = frozenset((0x00100030, 0x00100032, 0x00160077))
# Retain Institution Identity Option (PS3.15 E.3.11): the rows whose "Rtn. Inst. Id. Opt." is K.
INSTITUTION_KEEP = frozenset(
    (
        0x00120060, 0x00120081, 0x00120030, 0x00120031, 0x00080081, 0x00081040, 0x00081041,
        0x00080082, 0x00080080, 0x04000564,
    )
)  # fmt: skip
# Retain Patient Characteristics Option (PS3.15 E.3.7): "Rtn. Pat. Chars. Opt." K ...
PATIENT_KEEP = frozenset(
    (
        0x00102160, 0x00101010, 0x00100040, 0x00102203, 0x00101020, 0x00101030, 0x001021C0,
        0x0072005F, 0x001021A0,
    )
)  # fmt: skip
# ... and C (Allergies, Patient State, Pre-Medication, Special Needs).
PATIENT_CLEAN = frozenset((0x00102110, 0x00380500, 0x00400012, 0x00380050))
# Clean Structured Content Option (PS3.15 E.3.4): "Clean Struct. Cont. Opt." C (Acquisition
# Context, Content and Specimen Preparation Sequences) ...
STRUCTURED_CLEAN = frozenset((0x00400555, 0x0040A730, 0x00400610))
# ... and Clean Graphics Option (E.3.3): "Clean Graph. Opt." C, Graphic Annotation Sequence and
# the masked rows below (curves, overlay data and comments).
GRAPHICS_CLEAN = frozenset((0x00700001,))
GRAPHICS_MASKED = (
    (0x5000, 0x0000, 0xFF00, 0x0000, "C"),  # Curve Data (50xx,xxxx)
    (0x6000, 0x3000, 0xFF00, 0xFFFF, "C"),  # Overlay Data (60xx,3000)
    (0x6000, 0x4000, 0xFF00, 0xFFFF, "C"),  # Overlay Comments (60xx,4000)
)
# C of a sequence is its items cleaned: the table applies inside them, and so do these, for the
# text of the content items (Text Value, which the table does not list, would be kept as it is;
# Unformatted Text Value, D, would lose its meaning): cleaned of every identifying string.
STRUCTURED_INNER = {0x0040A160: "C"}  # Text Value (PS3.3 C.17.3 content items)
GRAPHICS_INNER = {0x00700006: "C"}  # Unformatted Text Value (PS3.3 C.10.5 text objects)
# Retain Safe Private Option (PS3.15 E.3.10): the private attributes Table E.3.10-1 lists as safe
# that apply to the classes this archive holds (private creator, group, element in the block).
# Beyond these, an object's own Private Data Element Characteristics Sequence (PS3.3 C.12.1.1.7)
# declaring a block SAFE, or elements of it non-identifying, makes them safe (transform.py).
SAFE_PRIVATE = frozenset(
    (
        ("Philips PET Private Group", 0x7053, 0x00),  # SUV Factor
        ("Philips PET Private Group", 0x7053, 0x09),  # Activity Concentration Scale Factor
        ("Philips MR Imaging DD 001", 0x2005, 0x0D),  # Scale Intercept
        ("Philips MR Imaging DD 001", 0x2005, 0x0E),  # Scale Slope
        ("GEMS_ACQU_01", 0x0019, 0x9E),  # Internal Pulse Sequence Name
        ("GEMS_SERS_01", 0x0025, 0x07),  # Images in Series
        ("GEIIS PACS", 0x0903, 0x10),  # Reject Image Flag
    )
)


class Column(Enum):
    """The option columns of Table E.1-1 this archive applies (PS3.15 E.3); the value is the
    Options field that chooses it."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_FULL_DATES = "retain_full_dates"
    RETAIN_MODIFIED_DATES = "retain_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"


@dataclass(frozen=True)
class Options:
    """The options of the Basic Profile an export applies (PS3.15 E.3), one field per Column.
    The two Retain Longitudinal Temporal Information options exclude each other (E.3.6)."""

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    retain_full_dates: bool = False
    retain_modified_dates: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False

    def __post_init__(self) -> None:
        if self.retain_full_dates and self.retain_modified_dates:
            raise ValueError("Retain Longitudinal Temporal Information: full or modified dates")

    def columns(self) -> tuple[Column, ...]:
        """The chosen option columns, in the order of Column."""
        chosen = {f.name for f in fields(self) if getattr(self, f.name)}
        return tuple(column for column in Column if column.value in chosen)


Masked = tuple[tuple[int, int, int, int, str], ...]  # group, element, their masks, action


@cache
def _basic() -> tuple[dict[int, str], Masked]:
    """The Basic Profile column: exact tags, and the masked rows (50xx curves, 60xx overlays)."""
    exact: dict[int, str] = dict(BASIC_ADDED)
    masked: list[tuple[int, int, int, int, str]] = []
    for category, tags in dicom_anonymization_database_selector(EDITION).items():
        action = CATEGORIES.get(category)
        if action is None:
            continue
        for entry in tags:
            if len(entry) == 2:
                exact.setdefault((entry[0] << 16) | entry[1], action)
            else:
                group, element, group_mask, element_mask = entry
                masked.append((group, element, group_mask, element_mask, action))
    return exact, tuple(masked)


def _is_temporal(tag: int) -> bool:
    if tag in TEMPORAL_NEVER:
        return False
    if tag in TEMPORAL_OTHER:
        return True
    try:
        return dictionary_VR(BaseTag(tag)) in TEMPORAL_VRS
    except KeyError:
        return False


@cache
def column(which: Column) -> tuple[dict[int, str], Masked]:
    """The action of each row of *which* that has one (K or C), and its masked rows."""
    exact, _ = _basic()
    rows: dict[int, str] = {}
    if which is Column.RETAIN_UIDS:
        uid = (t for t, a in exact.items() if a in ("U", "X/Z/U*") or t in UID_KEEP_OTHER)
        rows = {t: "K" for t in uid if t not in UID_NEVER_KEPT}
    elif which is Column.RETAIN_DEVICE_IDENTITY:
        rows = dict.fromkeys(DEVICE_KEEP, "K") | dict.fromkeys(DEVICE_CLEAN, "C")
    elif which is Column.RETAIN_INSTITUTION_IDENTITY:
        rows = dict.fromkeys(INSTITUTION_KEEP, "K")
    elif which is Column.RETAIN_PATIENT_CHARACTERISTICS:
        rows = dict.fromkeys(PATIENT_KEEP, "K") | dict.fromkeys(PATIENT_CLEAN, "C")
    elif which in (Column.RETAIN_FULL_DATES, Column.RETAIN_MODIFIED_DATES):
        code = "K" if which is Column.RETAIN_FULL_DATES else "C"
        rows = {t: code for t in exact if _is_temporal(t)}
    elif which is Column.CLEAN_DESCRIPTORS:
        rows = dict.fromkeys(DESCRIPTORS, "C")
    elif which is Column.CLEAN_STRUCTURED_CONTENT:
        rows = dict.fromkeys(STRUCTURED_CLEAN, "C")
    elif which is Column.CLEAN_GRAPHICS:
        return dict.fromkeys(GRAPHICS_CLEAN, "C"), GRAPHICS_MASKED
    return rows, ()  # Retain Safe Private: private attributes only (safe_private)


def _lookup(rows: dict[int, str], masked: Masked, tag: int) -> str | None:
    found = rows.get(tag)
    if found is not None:
        return found
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, gm, em, action in masked:
        if group & gm == g and element & em == e:
            return action
    return None


def basic_action(tag: int) -> str | None:
    """The Basic Profile's action for *tag*, None when the table does not list it."""
    return _lookup(*_basic(), tag)


def action_for(tag: int, options: Options, within: frozenset[int] = frozenset()) -> str | None:
    """The action Table E.1-1 gives *tag* with *options*: one of D, Z, X, K, C, U or a
    compound (X/Z, Z/D, X/D, X/Z/D, X/Z/U*); None for an attribute the table does not list
    (kept). *within* holds the tags of the sequences the attribute is in: in the items of a
    sequence that Clean Structured Content or Clean Graphics cleans, the text of content
    items is cleaned too. Private attributes are the caller's (safe_private)."""
    options_actions = set()
    for chosen in options.columns():
        rows, masked = column(chosen)
        found = _lookup(rows, masked, tag)
        if found is not None:
            options_actions.add(found)
    if options.clean_structured_content and within & STRUCTURED_CLEAN:
        options_actions.add(STRUCTURED_INNER.get(tag, ""))
    if options.clean_graphics and within & GRAPHICS_CLEAN:
        options_actions.add(GRAPHICS_INNER.get(tag, ""))
    basic = basic_action(tag)
    if "K" in options_actions and basic is not None:
        return "K"
    if "C" in options_actions:
        return "C"
    return basic


def compound_rows() -> frozenset[int]:
    """The tags whose Basic Profile action is a compound one (X/Z, Z/D, X/D, X/Z/D, X/Z/U*)."""
    exact, _ = _basic()
    return frozenset(tag for tag, action in exact.items() if "/" in action)


def safe_private(creator: str, tag: int) -> bool:
    """Whether Table E.3.10-1 lists the private attribute *tag* of the block of *creator*."""
    return (creator.strip(), tag >> 16, tag & 0xFF) in SAFE_PRIVATE
