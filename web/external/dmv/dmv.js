// Opens one slide series the way Slim does: the series metadata through dicomweb-client, the
// VOLUME images of it handed to dicom-microscopy-viewer's VolumeImageViewer.
/* global DICOMwebClient, dicomMicroscopyViewer */
(async () => {
  const params = new URLSearchParams(window.location.search);
  const client = new DICOMwebClient.api.DICOMwebClient({ url: params.get('url') });
  const studyInstanceUID = params.get('study');
  const seriesInstanceUID = params.get('series');
  try {
    const metadata = await client.retrieveSeriesMetadata({ studyInstanceUID, seriesInstanceUID });
    const volumeImages = metadata
      .map((item) => new dicomMicroscopyViewer.metadata.VLWholeSlideMicroscopyImage({ metadata: item }))
      .filter((image) => image.ImageType[2] === 'VOLUME');
    const viewer = new dicomMicroscopyViewer.viewer.VolumeImageViewer({
      client,
      metadata: volumeImages,
    });
    viewer.render({ container: document.getElementById('viewer') });
    window.viewer = viewer; // for a test or a console
    document.body.dataset.state = 'rendered';
  } catch (error) {
    console.error('the slide could not be opened', error);
    document.body.dataset.state = 'failed';
  }
})();
