"""Typed errors of the archive core; each front door maps them to its own wire status."""


class ArchiveError(Exception):
    """Something the archive refused or could not do; ``reason`` is readable by a person.

    ``sop_class`` and ``sop_instance`` name the instance concerned when it is known.
    """

    def __init__(
        self, reason: str, sop_class: str | None = None, sop_instance: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sop_class = sop_class
        self.sop_instance = sop_instance


class InvalidUID(ArchiveError):
    """A UID given by a client does not obey the UID grammar."""


class InvalidRequest(ArchiveError):
    """A request names something in a form the archive cannot read (a malformed path)."""


class NotFound(ArchiveError):
    """No stored study, series, instance, frame or bulk data item matches the request."""


class BlobMissing(NotFound):
    """The blob an index record names is gone: the instance was deleted or stored again
    since the record was read (a cached record is then stale)."""


class CodecError(ArchiveError):
    """Stored pixel data could not be decoded or re-encoded (corrupt data, unsupported form)."""


class InvalidInstance(ArchiveError):
    """The data is not a readable DICOM Part-10 instance, or lacks what the archive needs."""


class UnsupportedTransferSyntax(InvalidInstance):
    """The instance is encoded in a transfer syntax the archive does not know."""


class StudyMismatch(ArchiveError):
    """The instance belongs to another study than the one the request targets."""


class ConflictingInstance(ArchiveError):
    """The instance contradicts what the archive holds (e.g. its series is in another study)."""


class DuplicateInstance(ArchiveError):
    """An instance with this SOP Instance UID is stored already and the policy is to reject."""


class InstanceBusy(ArchiveError):
    """Another request is storing an instance with the same SOP Instance UID right now."""


class OutOfResources(ArchiveError):
    """The archive could not write: disk full, quota or similar."""


class RequestTooLarge(ArchiveError):
    """The data offered is larger than the configured limit."""


class ImageTooLarge(RequestTooLarge):
    """A rendered image asked for is larger than the server renders."""


class NotRenderable(ArchiveError):
    """The pixel data is in a form that cannot be decoded for rendering."""


class Forbidden(ArchiveError):
    """The principal lacks the scope the operation needs (never said of a particular study:
    a study the principal may not see is NotFound, so its existence does not leak)."""


class IndexUnavailable(ArchiveError):
    """The study index cannot be reached (its server down, its file gone): transient."""


class StorageUnavailable(ArchiveError):
    """The blob store cannot be reached or refuses the archive (object storage down, expired
    credentials): transient."""


class RecallPending(ArchiveError):
    """The blob is in a storage tier that must recall it before it can be read (S3 Glacier,
    Azure Archive): a recall has been started; transient, retry after ``retry_after`` s."""

    def __init__(self, reason: str, retry_after: float = 3600.0) -> None:
        super().__init__(reason)
        self.retry_after = max(1, round(retry_after))


class SchemaNotCurrent(Exception):
    """The index schema is not at the revision this build needs and may not be upgraded here
    (migrate_on_start off): a command refuses to start (never an answer on a wire, so no
    ArchiveError)."""
