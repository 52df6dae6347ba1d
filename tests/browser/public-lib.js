// Where dicom-microscopy-viewer loads its data loader worker and codecs from (its default is
// ./static/js/ of the page's app); the test serves its dist/ under dmv/.
window.PUBLIC_LIB_URL = new URL('dmv/', document.baseURI).href
