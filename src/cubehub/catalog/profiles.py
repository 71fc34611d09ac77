"""Per-collection profiles, as data: where each band lives and what its numbers mean.

The same Sentinel-2 or Landsat product is published by several STAC providers with
different asset keys (Earth Search ``red`` vs Planetary Computer ``B04``), different
metadata (``raster:bands`` scale/offset or none) and different harmonisation of the
Sentinel-2 processing-baseline 04.00 offset. A :class:`CollectionProfile` records one
provider's layout; :func:`cubehub.catalog.profile_match.profile_for` recognises it from an
item or a collection id.

A profile also holds the collection's defaults for a job: the bands
(:attr:`CollectionProfile.default_bands`), the output resolution
(:attr:`~CollectionProfile.resolution_m`), the cloud-mask rule
(:attr:`~CollectionProfile.mask_rule`), and each band's units and long name
(:class:`BandSpec`). A job says only what differs; nothing else in cubehub keeps
per-collection defaults.

cubehub's band names are Earth Search v1's common names (``coastal``, ``blue``,
``green``, ``red``, ``rededge1``..``rededge3``, ``nir``, ``nir08``, ``nir09``,
``swir16``, ``swir22``, ``lwir11``) plus ``scl`` / ``qa_pixel`` for the quality layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from cubehub.compute.masks import MaskKind, MaskRule, QaPixelMaskRule, SclMaskRule
from cubehub.errors import InputError

__all__ = [
    "PROFILES",
    "BandKind",
    "BandSpec",
    "CollectionProfile",
    "Sensor",
]

BandKind: TypeAlias = Literal["reflectance", "temperature", "mask"]
Sensor: TypeAlias = Literal["sentinel-2", "landsat"]


@dataclass(frozen=True)
class BandSpec:
    """One band of a collection: where it is stored and how its numbers are scaled."""

    name: str
    """cubehub's common name, e.g. ``"red"``."""
    keys: tuple[str, ...]
    """Asset keys that hold this band in this provider's items, preferred first."""
    resolution_m: float
    """Native pixel size in metres."""
    kind: BandKind = "reflectance"
    """``reflectance`` (unitless), ``temperature`` (kelvin) or ``mask`` (codes, never scaled)."""
    scale: float = 1.0
    """Default multiplier from stored number to physical value, used only when the item
    carries no ``raster:bands`` scale (1.0 for masks)."""
    offset: float = 0.0
    """Default additive offset, as for ``scale``. Sentinel-2 reflectance offsets depend on
    the processing baseline and are decided in :mod:`cubehub.catalog.scaling`, not here."""
    nodata: int = 0
    """Stored value meaning no data, used when the item does not say."""

    @property
    def units(self) -> str:
        """CF units of the decoded values: ``"1"`` (reflectance, masks) or ``"K"``."""
        return "K" if self.kind == "temperature" else "1"

    @property
    def long_name(self) -> str:
        """CF long name, e.g. ``"red surface reflectance"``, ``"lwir11 surface temperature"``."""
        what = {"reflectance": "surface reflectance", "temperature": "surface temperature"}
        return f"{self.name} {what.get(self.kind, 'quality codes')}"


@dataclass(frozen=True)
class CollectionProfile:
    """The layout of one provider's collection (see the module docstring)."""

    name: str
    """Unique profile name, ``provider/collection``, e.g. ``"earth-search/sentinel-2-l2a"``."""
    provider: str
    """``earth-search``, ``earth-search-v0``, ``planetary-computer`` or ``usgs``."""
    collection_ids: tuple[str, ...]
    """STAC collection ids this layout is published under."""
    hosts: tuple[str, ...]
    """Host names of the provider's STAC API, to tell providers of the same id apart."""
    sensor: Sensor
    """Which instrument family, deciding the scaling rules in :mod:`cubehub.catalog.scaling`."""
    bands: tuple[BandSpec, ...]
    """Data bands (reflectance, temperature), by common name."""
    mask: BandSpec
    """The per-pixel quality band (``scl`` or ``qa_pixel``)."""
    mask_rule: MaskRule
    """The default cloud mask: an :class:`~cubehub.compute.masks.SclMaskRule` (which SCL
    classes are clear) or a :class:`~cubehub.compute.masks.QaPixelMaskRule` (which QA_PIXEL
    bits reject a pixel); a job's ``mask`` changes it."""
    resolution_m: float
    """Native resolution of the finest reflectance bands, metres (10 for S2, 30 for
    Landsat); the default output resolution of a job and of :func:`cubehub.load_cube`."""
    default_bands: tuple[str, ...]
    """The bands a job composites when it names none."""
    asset_hosts: tuple[str, ...] = ()
    """Host names (or their endings, from a dot) of the provider's file storage, as in asset
    hrefs, to tell providers of the same id apart when the item's links do not."""

    @property
    def mask_kind(self) -> MaskKind:
        """How to read ``mask``: SCL classes or QA_PIXEL bits (see :mod:`cubehub.compute.masks`)."""
        return "scl" if isinstance(self.mask_rule, SclMaskRule) else "qa_pixel"

    @property
    def layout(self) -> tuple[object, ...]:
        """Everything that decides how an item is read and what a job gets by default:
        two profiles with the same layout read any item identically."""
        return (
            self.sensor,
            self.bands,
            self.mask,
            self.mask_rule,
            self.resolution_m,
            self.default_bands,
        )

    @property
    def job_defaults(self) -> tuple[object, ...]:
        """What a job that names only the collection gets: bands, resolution, mask rule."""
        return (self.default_bands, self.resolution_m, self.mask_rule)

    @property
    def band_names(self) -> tuple[str, ...]:
        """Every band name this profile knows: data bands, then the mask band."""
        return (*(b.name for b in self.bands), self.mask.name)

    def band(self, name: str) -> BandSpec:
        """The :class:`BandSpec` of one common band name (the mask band included)."""
        for spec in (*self.bands, self.mask):
            if spec.name == name:
                return spec
        raise InputError(
            f"unknown band {name!r} for {self.name}; valid names: {', '.join(self.band_names)}"
        )

    def check_bands(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` without repeats, after checking each is a band of this profile."""
        if isinstance(names, str):
            names = [names]
        wanted = tuple(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in self.band_names]
        if unknown:
            raise InputError(
                f"unknown band name(s) {', '.join(map(repr, unknown))} for {self.name}; "
                f"valid names: {', '.join(self.band_names)}"
            )
        if not wanted:
            raise InputError(f"no bands requested; choose from {', '.join(self.band_names)}")
        return wanted


# -- Sentinel-2 L2A -----------------------------------------------------------------------

_S2_BANDS: tuple[tuple[str, str, float], ...] = (
    # common name, band id (Planetary Computer / Earth Search v0 asset key), resolution m
    ("coastal", "B01", 60),
    ("blue", "B02", 10),
    ("green", "B03", 10),
    ("red", "B04", 10),
    ("rededge1", "B05", 20),
    ("rededge2", "B06", 20),
    ("rededge3", "B07", 20),
    ("nir", "B08", 10),
    ("nir08", "B8A", 20),
    ("nir09", "B09", 60),
    ("swir16", "B11", 20),
    ("swir22", "B12", 20),
)
# Sentinel-2 L2A reflectance is DN / 10000 (plus a baseline-dependent offset).
_S2_SCALE = 1e-4


def _s2_bands(by_band_id: bool) -> tuple[BandSpec, ...]:
    return tuple(
        BandSpec(name, (band_id if by_band_id else name,), res, scale=_S2_SCALE)
        for name, band_id, res in _S2_BANDS
    )


_S2_EARTH_SEARCH = _s2_bands(by_band_id=False)
_S2_BY_BAND_ID = _s2_bands(by_band_id=True)
_SCL_EARTH_SEARCH = BandSpec("scl", ("scl",), 20, kind="mask")
_SCL_BY_BAND_ID = BandSpec("scl", ("SCL",), 20, kind="mask")

_EARTH_SEARCH_HOSTS = ("earth-search.aws.element84.com",)
_PLANETARY_COMPUTER_HOSTS = ("planetarycomputer.microsoft.com",)
_USGS_HOSTS = ("landsatlook.usgs.gov",)
# Where the files are: Planetary Computer's Azure Blob accounts; Earth Search's Landsat
# items point at the USGS requester-pays bucket (s3://usgs-landsat/...).
_PLANETARY_COMPUTER_FILES = (".blob.core.windows.net",)
_EARTH_SEARCH_LANDSAT_FILES = ("usgs-landsat", "usgs-landsat.s3.us-west-2.amazonaws.com")

#: A job's bands when it names none. Sentinel-2: the 10 and 20 m bands of land mapping;
#: Landsat: the seven bands of the ODSE / GLAD product (thermal as lwir11).
_S2_DEFAULT_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
_ODSE_LANDSAT_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11")
_SCL_RULE = SclMaskRule()
_QA_RULE = QaPixelMaskRule()

# -- Landsat Collection 2 Level-2 ---------------------------------------------------------

# USGS Collection 2 Level-2 surface reflectance: DN * 2.75e-5 - 0.2; surface temperature
# (ST_B10 / ST_B6) in kelvin: DN * 0.00341802 + 149.0.
_LS_SCALE, _LS_OFFSET = 2.75e-5, -0.2
_ST_SCALE, _ST_OFFSET = 0.00341802, 149.0


def _landsat_bands(keys: Mapping[str, tuple[str, ...]]) -> tuple[BandSpec, ...]:
    return tuple(
        BandSpec(name, k, 30, kind="temperature", scale=_ST_SCALE, offset=_ST_OFFSET)
        if name == "lwir11"
        else BandSpec(name, k, 30, scale=_LS_SCALE, offset=_LS_OFFSET)
        for name, k in keys.items()
    )


_LS_COMMON_KEYS: dict[str, tuple[str, ...]] = {
    "coastal": ("coastal",),
    "blue": ("blue",),
    "green": ("green",),
    "red": ("red",),
    "nir08": ("nir08",),
    "swir16": ("swir16",),
    "swir22": ("swir22",),
    # Landsat 7 items on the Planetary Computer call their thermal band "lwir".
    "lwir11": ("lwir11", "lwir"),
}
# Landsat 8 band numbering, as in the legacy Planetary Computer `landsat-8-c2-l2` items.
_LS8_USGS_KEYS: dict[str, tuple[str, ...]] = {
    "coastal": ("SR_B1",),
    "blue": ("SR_B2",),
    "green": ("SR_B3",),
    "red": ("SR_B4",),
    "nir08": ("SR_B5",),
    "swir16": ("SR_B6",),
    "swir22": ("SR_B7",),
    "lwir11": ("ST_B10",),
}
# QA_PIXEL nodata is the fill bit (value 1), as the providers' raster:bands say.
_QA_COMMON = BandSpec("qa_pixel", ("qa_pixel",), 30, kind="mask", nodata=1)
_QA_USGS = BandSpec("qa_pixel", ("QA_PIXEL",), 30, kind="mask", nodata=1)

#: Every known profile. Order matters only for error messages.
PROFILES: tuple[CollectionProfile, ...] = (
    CollectionProfile(
        name="earth-search/sentinel-2-l2a",
        provider="earth-search",
        collection_ids=("sentinel-2-l2a",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="sentinel-2",
        bands=_S2_EARTH_SEARCH,
        mask=_SCL_EARTH_SEARCH,
        mask_rule=_SCL_RULE,
        resolution_m=10,
        default_bands=_S2_DEFAULT_BANDS,
    ),
    CollectionProfile(
        # Collection 1 reprocessing: same asset layout as sentinel-2-l2a on Earth Search v1.
        name="earth-search/sentinel-2-c1-l2a",
        provider="earth-search",
        collection_ids=("sentinel-2-c1-l2a",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="sentinel-2",
        bands=_S2_EARTH_SEARCH,
        mask=_SCL_EARTH_SEARCH,
        mask_rule=_SCL_RULE,
        resolution_m=10,
        default_bands=_S2_DEFAULT_BANDS,
    ),
    CollectionProfile(
        # Earth Search v0 (legacy): band-id asset keys, no raster:bands, no s2: properties.
        name="earth-search-v0/sentinel-s2-l2a-cogs",
        provider="earth-search-v0",
        collection_ids=("sentinel-s2-l2a-cogs",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="sentinel-2",
        bands=_S2_BY_BAND_ID,
        mask=_SCL_BY_BAND_ID,
        mask_rule=_SCL_RULE,
        resolution_m=10,
        default_bands=_S2_DEFAULT_BANDS,
    ),
    CollectionProfile(
        name="planetary-computer/sentinel-2-l2a",
        provider="planetary-computer",
        collection_ids=("sentinel-2-l2a",),
        hosts=_PLANETARY_COMPUTER_HOSTS,
        asset_hosts=_PLANETARY_COMPUTER_FILES,
        sensor="sentinel-2",
        bands=_S2_BY_BAND_ID,
        mask=_SCL_BY_BAND_ID,
        mask_rule=_SCL_RULE,
        resolution_m=10,
        default_bands=_S2_DEFAULT_BANDS,
    ),
    CollectionProfile(
        name="planetary-computer/landsat-c2-l2",
        provider="planetary-computer",
        collection_ids=("landsat-c2-l2",),
        hosts=_PLANETARY_COMPUTER_HOSTS,
        asset_hosts=_PLANETARY_COMPUTER_FILES,
        sensor="landsat",
        bands=_landsat_bands(_LS_COMMON_KEYS),
        mask=_QA_COMMON,
        mask_rule=_QA_RULE,
        resolution_m=30,
        default_bands=_ODSE_LANDSAT_BANDS,
    ),
    CollectionProfile(
        name="earth-search/landsat-c2-l2",
        provider="earth-search",
        collection_ids=("landsat-c2-l2",),
        hosts=_EARTH_SEARCH_HOSTS,
        asset_hosts=_EARTH_SEARCH_LANDSAT_FILES,
        sensor="landsat",
        bands=_landsat_bands(_LS_COMMON_KEYS),
        mask=_QA_COMMON,
        mask_rule=_QA_RULE,
        resolution_m=30,
        default_bands=_ODSE_LANDSAT_BANDS,
    ),
    CollectionProfile(
        # The USGS STAC server's surface-reflectance collection; it has no thermal band.
        name="usgs/landsat-c2l2-sr",
        provider="usgs",
        collection_ids=("landsat-c2l2-sr",),
        hosts=_USGS_HOSTS,
        sensor="landsat",
        bands=_landsat_bands({k: v for k, v in _LS_COMMON_KEYS.items() if k != "lwir11"}),
        mask=_QA_COMMON,
        mask_rule=_QA_RULE,
        resolution_m=30,
        # The surface-temperature files are another collection there (landsat-c2l2-st).
        default_bands=_ODSE_LANDSAT_BANDS[:-1],
    ),
    CollectionProfile(
        # Legacy Planetary Computer collection with USGS file-name keys (Landsat 8 only).
        name="planetary-computer/landsat-8-c2-l2",
        provider="planetary-computer",
        collection_ids=("landsat-8-c2-l2",),
        hosts=_PLANETARY_COMPUTER_HOSTS,
        asset_hosts=_PLANETARY_COMPUTER_FILES,
        sensor="landsat",
        bands=_landsat_bands(_LS8_USGS_KEYS),
        mask=_QA_USGS,
        mask_rule=_QA_RULE,
        resolution_m=30,
        default_bands=_ODSE_LANDSAT_BANDS,
    ),
)
