"""wsiarchive: composition of the archive core and its front doors, the CLI and settings."""

__version__ = "0.1.0"
