// Where dicom-microscopy-viewer finds its decoding worker (and the worker its WebAssembly
// codecs): its dynamic-import/ folder, below this page wherever the page is hosted.
window.PUBLIC_URL = new URL('.', window.location.href).pathname;
window.PUBLIC_LIB_URL = 'dicom-microscopy-viewer/dynamic-import/';
