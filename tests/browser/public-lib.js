// Where dicom-microscopy-viewer loads its data loader worker (an ES module) and its wasm
// codecs from: its dist/dynamic-import/ (the default is ./static/js/ of the page's app).
window.PUBLIC_LIB_URL = new URL('dmv/dynamic-import/', document.baseURI).href
