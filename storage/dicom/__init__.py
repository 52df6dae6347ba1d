"""DICOM format knowledge, with no index and no blobs: UIDs and transfer syntaxes, Part-10
files and their frame tables, the DICOM JSON document, value normal forms, the levels."""
