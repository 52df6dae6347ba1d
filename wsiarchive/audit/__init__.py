"""The audit trail leaving the archive: DICOM Audit Messages (PS3.15 A.5) over syslog."""
