// The annotation hook of the study view (a placeholder: the annotations helper's version
// replaces this file at merge). study.js calls it once the slide viewer exists, with the
// dicom-microscopy-viewer VolumeImageViewer, the dicomweb-client, the slide's Study and
// (first VOLUME) Series Instance UIDs, its VOLUME images' metadata, the DICOMweb root and the
// element that holds the side panel's annotation controls.
export function attachAnnotations({ viewer, client, studyUID, seriesUID, metadata, root, container }) {
  void viewer; void client; void studyUID; void seriesUID; void metadata; void root; void container
}
