"""DICOMweb front door (PS3.18): QIDO-RS, WADO-RS and STOW-RS over Flask."""

from dicomweb.app import create_app

__all__ = ["create_app"]
