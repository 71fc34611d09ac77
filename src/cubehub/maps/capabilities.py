"""Documents that describe a store's tiles to clients: a TileJSON 3.0 per layer and tile
matrix set, and an OGC WMTS 1.0 GetCapabilities (RESTful) per store; pure.

Both carry absolute URLs (TileJSON clients and GIS software expect them), made from the
``base`` the server was reached at (see :mod:`cubehub.maps.server`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from morecantile import TileMatrixSet

from cubehub.maps.layers import Layer, ServedStore
from cubehub.maps.tms import TILE_SIZE

__all__ = ["tile_path", "tilejson", "wmts_capabilities"]

_NS = {
    "": "http://www.opengis.net/wmts/1.0",
    "ows": "http://www.opengis.net/ows/1.1",
    "xlink": "http://www.w3.org/1999/xlink",
}


def tile_path(store: str, layer: str, tms: str) -> str:
    """The tile URL template of a layer, relative to the server's root."""
    return f"{store}/layers/{layer}/tiles/{tms}/{{z}}/{{x}}/{{y}}.png"


def tilejson(store: ServedStore, layer: Layer, tms: TileMatrixSet, base: str) -> dict[str, Any]:
    """TileJSON 3.0.0 of ``layer`` in ``tms`` (zoom levels, bounds, centre, legend hints)."""
    west, south, east, north = store.lonlat_bounds()
    style = store.styles[layer.variable]
    season = next(s for s in store.seasons if s["label"] == layer.season)
    return {
        "tilejson": "3.0.0",
        "name": layer.id,
        "description": f"{style.long_name}, {layer.season} ({season['start']}..{season['end']})"
        + (f", p{layer.percentile:g}" if layer.percentile is not None else ""),
        "scheme": "xyz",
        "tiles": [base + tile_path(store.name, layer.id, str(tms.id))],
        "minzoom": tms.minzoom,
        "maxzoom": tms.maxzoom,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, tms.maxzoom],
        "tileSize": TILE_SIZE,
        "crs": tms.crs.to_epsg() and f"EPSG:{tms.crs.to_epsg()}",
        "tile_matrix_set": str(tms.id),
        "cubehub": {**layer.to_json(), **style.to_json(), "season_window": season},
    }


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    prefix, _, name = tag.rpartition(":")
    child = ET.SubElement(parent, f"{{{_NS[prefix]}}}{name}", attrs)
    if text is not None:
        child.text = text
    return child


def wmts_capabilities(store: ServedStore, base: str) -> bytes:
    """The WMTS 1.0.0 capabilities document of ``store``: every layer in every tile matrix set,
    RESTful tile URLs."""
    for prefix, uri in _NS.items():
        ET.register_namespace(prefix, uri)
    root = ET.Element(f"{{{_NS['']}}}Capabilities", {"version": "1.0.0"})
    ident = _el(root, "ows:ServiceIdentification")
    _el(ident, "ows:Title", f"cubehub {store.name}")
    _el(ident, "ows:ServiceType", "OGC WMTS")
    _el(ident, "ows:ServiceTypeVersion", "1.0.0")
    contents = _el(root, "Contents")
    west, south, east, north = store.lonlat_bounds()
    for layer in store.layers.values():
        node = _el(contents, "Layer")
        style = store.styles[layer.variable]
        _el(
            node,
            "ows:Title",
            f"{style.long_name} {layer.season}"
            + (f" p{layer.percentile:g}" if layer.percentile is not None else ""),
        )
        box = _el(node, "ows:WGS84BoundingBox", crs="urn:ogc:def:crs:OGC:2:84")
        _el(box, "ows:LowerCorner", f"{west} {south}")
        _el(box, "ows:UpperCorner", f"{east} {north}")
        _el(node, "ows:Identifier", layer.id)
        style_node = _el(node, "Style", isDefault="true")
        _el(style_node, "ows:Identifier", "default")
        _el(node, "Format", "image/png")
        for tms_id in store.tms:
            link = _el(node, "TileMatrixSetLink")
            _el(link, "TileMatrixSet", tms_id)
        template = base + tile_path(store.name, layer.id, "{TileMatrixSet}")
        template = template.replace("{z}", "{TileMatrix}").replace("{x}", "{TileCol}")
        _el(
            node,
            "ResourceURL",
            format="image/png",
            resourceType="tile",
            template=template.replace("{y}", "{TileRow}"),
        )
    for tms in store.tms.values():
        _tile_matrix_set(contents, tms)
    return bytes(ET.tostring(root, xml_declaration=True, encoding="utf-8"))


def _tile_matrix_set(parent: ET.Element, tms: TileMatrixSet) -> None:
    node = _el(parent, "TileMatrixSet")
    _el(node, "ows:Identifier", str(tms.id))
    epsg = tms.crs.to_epsg()
    _el(node, "ows:SupportedCRS", f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else tms.crs.to_wkt())
    for matrix in tms.tileMatrices:
        m = _el(node, "TileMatrix")
        _el(m, "ows:Identifier", str(matrix.id))
        _el(m, "ScaleDenominator", repr(float(matrix.scaleDenominator)))
        x, y = matrix.pointOfOrigin
        if tms._invert_axis:  # WMTS writes the origin in the CRS's own axis order
            x, y = y, x
        _el(m, "TopLeftCorner", f"{x!r} {y!r}")
        _el(m, "TileWidth", str(matrix.tileWidth))
        _el(m, "TileHeight", str(matrix.tileHeight))
        _el(m, "MatrixWidth", str(matrix.matrixWidth))
        _el(m, "MatrixHeight", str(matrix.matrixHeight))
