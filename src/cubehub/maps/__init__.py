"""Maps of composite stores: XYZ and OGC WMTS tiles (Web Mercator and the store's own grid),
TileJSON, pixel profiles and the web page of ``cubehub serve``."""
