"""HTTP mechanics of the DICOMweb front door, with no archive in them: media types and
negotiation, streaming multipart, validators and caching, ranges, gzip, Warning headers,
streamed bodies, and DICOM JSON / XML responses."""
