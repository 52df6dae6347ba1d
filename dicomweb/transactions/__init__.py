"""The DICOMweb transactions (PS3.18 §10): STOW-RS, WADO-RS (instances, metadata, frames,
bulk data, rendered and thumbnail resources), QIDO-RS and Retrieve Capabilities."""
