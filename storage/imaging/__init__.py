"""Imaging, with no index and no blobs: frame codecs (transcoding), tiles on a Total Pixel
Matrix and pyramid levels, display (VOI, colour management, scaling, image files)."""
