"""Finding and normalising STAC items: search (APIs and static catalogs), CQL2 filters,
collection profiles (band names, scale/offset, masks per provider) and item normalisation
(CRS, band names, DN offsets, de-duplication). Metadata only: no pixel is read here."""
