"""The composite job: one record for the demo, the notebooks and batch job files.

Validated once, at the edge (:func:`load_job` for YAML files, the model's constructor for
Python), with messages that name the field, what was wrong, and the valid choices.

A job says only what differs from its collection's defaults: bands, resolution and mask
come from the collection profile (:mod:`cubehub.job_defaults`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from cubehub import config
from cubehub.catalog.profiles import PROFILES, CollectionProfile
from cubehub.catalog.search_input import check_bbox, check_cloud_cover
from cubehub.clusters.spec import ClusterSection
from cubehub.compute.harmonize import check_harmonisation
from cubehub.compute.percentile import DEFAULT_PERCENTILES, check_percentiles
from cubehub.errors import InputError
from cubehub.gapfill import GapFillSpec, filled_url
from cubehub.grid import AnchorOption, check_anchor, check_bounds_on_anchor, epsg_code
from cubehub.job_defaults import MaskSpec, with_profile_defaults
from cubehub.output.storage import check_no_secrets, check_store_url
from cubehub.output.storage import storage_options as fsspec_options
from cubehub.seasons import calendar_from_name

_T = TypeVar("_T")
#: The collection of a job that names none.
DEFAULT_COLLECTION = "sentinel-2-l2a"


EmptySeasonPolicy = Literal["fill", "nan", "error"]


class CompositeJob(BaseModel):
    """Everything that defines one seasonal composite job.

    Example (YAML)::

        stac_api: earth-search
        collection: sentinel-2-l2a
        bbox: [15.60, 47.00, 15.70, 47.07]
        years: [2022]
        output: s3://my-bucket/composites/graz-2022.zarr

    ``bands``, ``resolution`` and ``mask`` default to the collection profile's (see the
    module docstring); ``collections: [id]`` (one id, as in a STAC search) is accepted for
    ``collection``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stac_api: str = Field(
        description="STAC API URL or shortcut (earth-search, planetary-computer, ...)"
    )
    collection: str = Field(
        DEFAULT_COLLECTION,
        description="STAC collection id (collections: [id] is read as this); it chooses the "
        "profile whose defaults the job gets",
    )
    collection_profile: str | None = Field(
        None,
        description="the collection layout, e.g. planetary-computer/landsat-c2-l2, where "
        "items cannot tell (default: recognised from the STAC API and each item)",
    )
    bbox: tuple[float, float, float, float] = Field(
        description="west, south, east, north in degrees"
    )
    years: tuple[int, ...] = Field(
        description="years to composite; ODSE winter starts on 2 Dec of the year before"
    )
    calendar: str = Field(
        "odse", description="season calendar: odse, quarters, meteorological or months"
    )
    seasons: tuple[str, ...] | None = Field(
        None, description="only these seasons of the calendar, e.g. [summer]; default all"
    )
    on_empty_season: EmptySeasonPolicy | None = Field(
        None,
        description="a season without acquisitions: fill (gap filled; the default with gap_fill), "
        "nan (NaN layers, valid_count 0; the default without) or error (refuse the job)",
    )
    gap_fill: GapFillSpec | None = Field(
        None,
        description="fill the composites' gaps into a second store after the job; true or {} for the defaults",
    )
    bands: tuple[str, ...] = Field(
        description="bands by common name; default the collection profile's (Sentinel-2: "
        "blue green red nir swir16 swir22; Landsat: the ODSE seven, blue green red nir08 "
        "swir16 swir22 lwir11)"
    )
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    method: Literal["linear", "nearest"] = "linear"
    min_count: int = Field(1, ge=1, description="fewer clear observations than this give nodata")
    indices: tuple[str, ...] = ("NDVI",)
    index_mode: Literal["per-observation", "of-composite"] = "per-observation"
    harmonize: str | None = Field(
        None,
        description="Landsat only: roy2016 moves TM/ETM+ reflectance to OLI's (Roy et al. 2016) "
        "before the percentiles; default none (see cubehub.compute.harmonize)",
    )
    max_cloud_cover: float | None = Field(
        None, ge=0, le=100, description="scene cloud cover limit, percent"
    )
    filter: dict[str, Any] | None = Field(
        None,
        description="CQL2-JSON filter on item properties (sent to the API, or evaluated by cubehub)",
    )
    epsg: int | None = Field(
        None,
        description="output CRS: 3035, 'EPSG:3035' or a pyproj CRS; default: the items' own CRS",
    )
    resolution: float = Field(
        gt=0,
        description="output pixel size in CRS units (metres); default the collection "
        "profile's native resolution (Sentinel-2 10, Landsat 30)",
    )
    bounds: tuple[float, float, float, float] | None = Field(
        None,
        description="output xmin, ymin, xmax, ymax in the output CRS; default: bbox, snapped outward",
    )
    anchor: AnchorOption = Field(
        "auto",
        description="where the pixel edges lie: auto (the items' own pixel grid where epsg and "
        "resolution are theirs, else edge), edge (multiples of resolution), center (half a "
        "pixel off) or a pixel corner [x, y] in CRS units",
    )
    chunk_size: int = Field(
        default_factory=lambda: int(config.get("composite.chunk_size")),
        ge=32,
        le=4096,
        description="spatial chunk edge (compute and Zarr), pixels; default: setting cubehub.composite.chunk_size (512)",
    )
    tile_size: int = Field(
        2048,
        ge=32,
        description="tile edge in pixels, a multiple of chunk_size: the unit of work and of resume",
    )
    mask: MaskSpec = Field(
        default_factory=MaskSpec,
        description="cloud mask; default the collection profile's (SCL classes or QA_PIXEL bits)",
    )
    on_read_error: Literal["fail", "missing"] = Field(
        "fail",
        description="an asset that cannot be read stops the job (fail) or counts as nodata (missing)",
    )
    output: str = Field(description="Zarr store URL: a local path, s3://bucket/path, ...")
    overwrite: bool = Field(False, description="replace an existing store made by a different job")
    zarr_format: Literal[2, 3] | None = Field(
        None,
        description="Zarr format of the store: 2 (the default for zarr stores; GDAL and QGIS "
        "read it), or 3 (GDAL <= 3.10 cannot: it lacks format 3's bytes codec); icechunk "
        "stores are always 3",
    )
    store_kind: Literal["zarr", "icechunk"] = Field(
        "zarr",
        description="zarr, or icechunk for transactional writes (a job appears at once on commit)",
    )
    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of a non-AWS object store, e.g. http://minio:9000; default AWS_ENDPOINT_URL or AWS",
    )
    profile: str | None = Field(None, description="named AWS profile holding the S3 credentials")
    anonymous: bool = Field(False, description="unsigned requests, for public buckets")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="more fsspec options for the output (never credentials: those come from the environment)",
    )
    cluster: ClusterSection = Field(
        default_factory=ClusterSection,
        description="where the job runs (backend and its settings); see cubehub.clusters.spec",
    )

    _profile: CollectionProfile = PrivateAttr()
    _defaults_note: str = PrivateAttr(default="")

    @model_validator(mode="wrap")
    @classmethod
    def _collection_defaults(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Fill the fields the job leaves out from its collection profile, then validate."""
        if not isinstance(data, dict):
            return handler(data)
        try:
            filled, profile, note = with_profile_defaults(data, DEFAULT_COLLECTION)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        job = handler(filled)
        try:
            job.mask.rule(profile)  # bits or classes that are no such thing: now, not in a task
        except InputError as exc:
            raise ValueError(f"mask: {exc}") from None
        job._profile, job._defaults_note = profile, note
        return job

    @property
    def resolved_profile(self) -> CollectionProfile:
        """The collection profile the job's defaults come from (and, with
        ``collection_profile``, the one its items are read with)."""
        return self._profile

    def defaults_note(self) -> str:
        """Which fields came from where, one line, e.g. ``"bands, resolution, mask.reject_bits
        from profile planetary-computer/landsat-c2-l2 (collection landsat-c2-l2)"``."""
        return self._defaults_note

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox(cls, value: Any) -> tuple[float, float, float, float]:
        return _as_value_error(check_bbox, value)

    @field_validator("profile")
    @classmethod
    def _aws_profile(cls, value: str | None) -> str | None:
        if value in {p.name for p in PROFILES}:
            raise ValueError(
                f"{value!r} is a collection profile; profile names the AWS profile of the S3 "
                f"credentials: write collection_profile: {value}"
            )
        return value

    @field_validator("epsg", mode="before")
    @classmethod
    def _epsg(cls, value: Any) -> int | None:
        return None if value is None else _as_value_error(epsg_code, value)

    @field_validator("anchor", mode="before")
    @classmethod
    def _anchor(cls, value: Any) -> AnchorOption:
        return _as_value_error(check_anchor, value)

    @model_validator(mode="after")
    def _bounds_on_anchor(self) -> CompositeJob:
        if self.bounds is not None:
            _as_value_error(
                lambda b: check_bounds_on_anchor(b, self.anchor, self.resolution), self.bounds
            )
        return self

    @field_validator("bands", "indices", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value  # one name needs no list

    @field_validator("max_cloud_cover", mode="before")
    @classmethod
    def _cloud_cover(cls, value: Any) -> float | None:
        return _as_value_error(check_cloud_cover, value)

    @field_validator("harmonize")
    @classmethod
    def _harmonize(cls, value: str | None) -> str | None:
        return _as_value_error(check_harmonisation, value)

    @model_validator(mode="after")
    def _harmonize_landsat_only(self) -> CompositeJob:
        sensors = {p.sensor for p in PROFILES if self.collection in p.collection_ids}
        if self.harmonize is not None and sensors and "landsat" not in sensors:
            raise ValueError(
                f"harmonize: {self.harmonize} harmonises Landsat TM/ETM+ to OLI, but collection "
                f"{self.collection} is {', '.join(sorted(sensors))}; leave harmonize out"
            )
        return self

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        return _as_value_error(check_store_url, value)

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

    @field_validator("gap_fill", mode="before")
    @classmethod
    def _gap_fill_switch(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @model_validator(mode="after")
    def _seasons_and_gap_fill(self) -> CompositeJob:
        if self.seasons is not None:
            try:
                calendar_from_name(self.calendar, [2000]).select(self.seasons)
            except InputError as exc:
                raise ValueError(f"seasons: {exc}") from None
        if self.on_empty_season == "fill" and self.gap_fill is None:
            raise ValueError(
                "on_empty_season: fill needs gap_fill (add gap_fill: true), or choose nan or error"
            )
        if self.gap_fill is not None and self.gap_fill.output == self.output:
            raise ValueError(
                "gap_fill.output must differ from output: the observed composites are kept"
            )
        return self

    @property
    def empty_season_policy(self) -> EmptySeasonPolicy:
        """What a season without acquisitions gives: ``on_empty_season``, or its default."""
        if self.on_empty_season is not None:
            return self.on_empty_season
        return "fill" if self.gap_fill is not None else "nan"

    def gap_fill_output(self) -> str | None:
        """URL of the filled store: ``gap_fill.output``, else :func:`cubehub.gapfill.filled_url`
        of ``output`` (``graz.zarr`` -> ``graz-filled.zarr``); None without gap_fill."""
        if self.gap_fill is None:
            return None
        return self.gap_fill.output or filled_url(self.output)

    @field_validator("storage_options")
    @classmethod
    def _storage_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        _as_value_error(lambda options: check_no_secrets(options, "storage_options"), value)
        return value

    @field_validator("percentiles")
    @classmethod
    def _percentiles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return _as_value_error(check_percentiles, value)

    def output_storage_options(self) -> dict[str, Any]:
        """The fsspec options of the output (``endpoint_url``, ``profile``, ``anonymous``,
        ``storage_options``); never credentials."""
        return fsspec_options(
            self.output,
            endpoint_url=self.endpoint_url,
            profile=self.profile,
            anonymous=self.anonymous,
            extra=self.storage_options,
        )


def _as_value_error(check: Callable[[Any], _T], value: Any) -> _T:
    """``check(value)``, its :class:`InputError` raised as the ValueError pydantic reports."""
    try:
        return check(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def make_job(**fields: Any) -> CompositeJob:
    """Build a :class:`CompositeJob`, turning validation errors into one :class:`InputError`."""
    try:
        return CompositeJob(**fields)
    except ValidationError as exc:
        raise InputError(_describe(exc, "job")) from None


def load_job(source: Path | str) -> CompositeJob:
    """Read and validate a YAML job: a file path, or ``env:NAME`` for the YAML held by the
    environment variable ``NAME`` (how batch pods receive their job)."""
    spec = str(source)
    if spec.startswith("env:"):
        name = spec.removeprefix("env:")
        text = os.environ.get(name)
        if text is None:
            raise InputError(
                f"environment variable {name} (from {spec!r}) is not set; it should hold the job YAML"
            )
        return job_from_yaml(text, f"job in ${name}")
    path = Path(source)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"job file {path} does not exist") from None
    return job_from_yaml(text, f"job file {path}")


def job_from_yaml(text: str, where: str = "job") -> CompositeJob:
    """Validate the YAML text of a job; ``where`` names it in errors (e.g. ``job file x.yaml``)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{where} must hold a mapping of settings, e.g. 'output: ...'")
    try:
        return CompositeJob(**raw)
    except ValidationError as exc:
        raise InputError(_describe(exc, where)) from None


def _keys_at(path: tuple[int | str, ...]) -> list[str]:
    """The keys a job file accepts at ``path`` (e.g. ``("cluster",)``)."""
    model: type[BaseModel] = CompositeJob
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        # A model, or an optional one (``GapFillSpec | None``).
        nested = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type)]
        models = [a for a in nested if issubclass(a, BaseModel)]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


def _describe(exc: ValidationError, where: str) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            keys = _keys_at(err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1]), keys, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"unknown key {field!r} ({hint}valid keys there: {', '.join(keys)})")
        elif err["type"] == "missing":
            problems.append(f"missing required key {field!r}")
        else:
            # A whole-job check names its own field(s) at the start of its message.
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {message}" if field else message)
    return f"{where}: " + "; ".join(problems)
