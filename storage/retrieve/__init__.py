"""The read path: frames by ranged reads, bulk data, per-blob descriptions, the transcoder
and the renderer. The archive wires them once per process for every front door."""
