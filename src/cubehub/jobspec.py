"""The composite job: one record for the demo, the notebooks and batch job files.

Validated once, at the edge (:func:`load_job` for YAML files, the model's constructor for
Python), with messages that name the field, what was wrong, and the valid choices.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cubehub.clusterspec import ClusterSection
from cubehub.errors import InputError
from cubehub.search import check_bbox
from cubehub.seasons import calendar_from_name
from cubehub.storage import check_no_secrets


class MaskSpec(BaseModel):
    """Cloud masking of Sentinel-2 SCL classes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_classes: tuple[int, ...] = Field(
        (4, 5, 6, 7, 11), description="SCL classes kept as clear (vegetation, bare, water, unclassified, snow)"
    )
    dilate_cloud_m: float = Field(0.0, ge=0, description="grow clouds by this distance, metres")
    dilate_shadow_m: float = Field(0.0, ge=0, description="grow cloud shadows by this distance, metres")


class CompositeJob(BaseModel):
    """Everything that defines one seasonal composite job.

    Example (YAML)::

        stac_api: earth-search
        collection: sentinel-2-l2a
        bbox: [15.60, 47.00, 15.70, 47.07]
        years: [2022]
        output: s3://my-bucket/composites/graz-2022.zarr
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stac_api: str = Field(description="STAC API URL or shortcut (earth-search, planetary-computer, ...)")
    collection: str = Field("sentinel-2-l2a", description="STAC collection id")
    bbox: tuple[float, float, float, float] = Field(description="west, south, east, north in degrees")
    years: tuple[int, ...] = Field(description="years to composite; ODSE winter starts on 2 Dec of the year before")
    calendar: str = Field("odse", description="season calendar: odse, quarters, meteorological or months")
    bands: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
    percentiles: tuple[float, ...] = (25.0, 50.0, 75.0)
    method: Literal["linear", "nearest"] = "linear"
    min_count: int = Field(1, ge=1, description="fewer clear observations than this give nodata")
    indices: tuple[str, ...] = ("NDVI",)
    index_mode: Literal["per-observation", "of-composite"] = "per-observation"
    max_cloud_cover: float | None = Field(None, ge=0, le=100, description="scene cloud cover limit, percent")
    filter: dict[str, Any] | None = Field(
        None, description="CQL2-JSON filter on item properties (sent to the API, or evaluated by cubehub)"
    )
    epsg: int | None = Field(None, description="output CRS; default: the items' own CRS")
    resolution: float = Field(10.0, gt=0, description="output pixel size in CRS units (metres)")
    bounds: tuple[float, float, float, float] | None = Field(
        None, description="output xmin, ymin, xmax, ymax in the output CRS; default: bbox, snapped outward"
    )
    chunk_size: int = Field(512, ge=32, le=4096, description="spatial chunk edge (compute and Zarr), pixels")
    tile_size: int = Field(
        2048, ge=32, description="tile edge in pixels, a multiple of chunk_size: the unit of work and of resume"
    )
    mask: MaskSpec = MaskSpec()
    on_read_error: Literal["fail", "missing"] = Field(
        "fail", description="an asset that cannot be read stops the job (fail) or counts as nodata (missing)"
    )
    output: str = Field(description="Zarr store URL: a local path, s3://bucket/path, ...")
    overwrite: bool = Field(False, description="replace an existing store made by a different job")
    zarr_format: Literal[2, 3] = Field(3, description="Zarr format of the store: 3, or 2 for older readers (GDAL <= 3.10)")
    store_kind: Literal["zarr", "icechunk"] = Field(
        "zarr", description="zarr, or icechunk for transactional writes (a job appears at once on commit)"
    )
    endpoint_url: str | None = Field(
        None, description="S3 endpoint of a non-AWS object store, e.g. http://minio:9000; default AWS_ENDPOINT_URL or AWS"
    )
    profile: str | None = Field(None, description="named AWS profile holding the S3 credentials")
    anonymous: bool = Field(False, description="unsigned requests, for public buckets")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="more fsspec options for the output (never credentials: those come from the environment)",
    )
    cluster: ClusterSection = Field(
        default_factory=ClusterSection, description="where the job runs (backend and its settings); see cubehub.clusterspec"
    )

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        try:
            return check_bbox(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("years")
    @classmethod
    def _years(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("give at least one year")
        if any(not 1984 <= y <= 2100 for y in value):
            raise ValueError(f"years must lie within 1984..2100, got {list(value)}")
        return tuple(sorted(set(value)))

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        try:
            calendar_from_name(value, [2000])
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("storage_options")
    @classmethod
    def _storage_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            check_no_secrets(value, "storage_options")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("percentiles")
    @classmethod
    def _percentiles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("give at least one percentile")
        bad = [q for q in value if not 0 <= q <= 100]
        if bad:
            raise ValueError(f"percentiles must lie within 0..100, got {bad}")
        return value


def make_job(**fields: Any) -> CompositeJob:
    """Build a :class:`CompositeJob`, turning validation errors into one :class:`InputError`."""
    try:
        return CompositeJob(**fields)
    except ValidationError as exc:
        raise InputError(_describe(exc, "job")) from None


def load_job(path: Path | str) -> CompositeJob:
    """Read and validate a YAML job file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"job file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise InputError(f"job file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"job file {path} must hold a mapping of settings, e.g. 'output: ...'")
    try:
        return CompositeJob(**raw)
    except ValidationError as exc:
        raise InputError(_describe(exc, f"job file {path}")) from None


def _keys_at(path: tuple[int | str, ...]) -> list[str]:
    """The keys a job file accepts at ``path`` (e.g. ``("cluster",)``)."""
    model: type[BaseModel] = CompositeJob
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(exc: ValidationError, where: str) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            keys = _keys_at(err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1]), keys, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"unknown key {field!r} ({hint}valid keys there: {', '.join(keys)})")
        elif err["type"] == "missing":
            problems.append(f"missing required key {field!r}")
        else:
            problems.append(f"{field}: {err['msg'].removeprefix('Value error, ')}")
    return f"{where}: " + "; ".join(problems)
