"""How pixels are read: hrefs signed at read time, and a policy for assets that fail.

stackstac builds its readers inside the tasks, on the workers, when a chunk is computed;
cubehub's reader hooks in there:

* **Signing at read time.** Planetary Computer hrefs need a SAS token that expires after
  about 45 minutes; a token added at search time is stale by the time a long job reads
  the last scenes. :class:`SasTokenSigner` fetches a token per storage container when a
  reader is made, caches it per worker process, and renews it 5 minutes before it expires.
* **Failed reads.** GDAL retries transient HTTP errors itself (``GDAL_HTTP_MAX_RETRY``,
  ``GDAL_HTTP_RETRY_DELAY`` from the ``cubehub.gdal`` settings). What still fails either
  stops the job with an :class:`~cubehub.errors.AssetReadError` naming the href
  (``on_error="fail"``, the default), or, when the user allows it (``on_error="missing"``),
  counts as missing data: the pixels become nodata and the href is reported as a
  ``cubehub-missing-asset`` event on the Dask scheduler (see :func:`missing_assets`),
  labelled with the cube's ``tag`` (the pipeline's run and tile), so each tile knows
  exactly which of its assets were missing.
* **Native reads.** Where a file's CRS, pixel size and pixel edges are the output grid's
  (e.g. Landsat at 30 m in its UTM zone on an ``anchor: auto`` grid, see
  :mod:`cubehub.grid`), nothing needs warping: the reader reads the window with a plain
  windowed read (no GDAL ``WarpedVRT``) and fills the part outside the file with nodata,
  giving exactly the DNs the warped read gives. Those dataset handles are kept open per
  thread across tasks (at most :data:`NATIVE_HANDLES_PER_THREAD`, GTiff only, whose driver
  GDAL allows in several threads on separate handles), so the next task of a worker thread
  on the same file skips the open. Other files take stackstac's warped read. Which path a
  file takes is logged at DEBUG level (logger ``cubehub.reader``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window
from stackstac.rio_reader import (
    MULTITHREADED_DRIVER_ALLOWLIST,
    AutoParallelRioReader,
    LayeredEnv,
)
from stackstac.rio_reader import nodata_for_window as _nodata_for_window

from cubehub.errors import AssetReadError, DataError, InputError

OnError = Literal["fail", "missing"]
#: Most dataset handles one thread keeps open for native reads; the least recently used
#: is closed beyond that (a handle holds a file descriptor and GDAL's block cache entries).
NATIVE_HANDLES_PER_THREAD = 64
MISSING_EVENT = "cubehub-missing-asset"
PLANETARY_COMPUTER_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
log = logging.getLogger(__name__)

# Per worker process: (token endpoint, container key) -> (token, expiry as epoch seconds).
_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()
_LOCAL_MISSING: list[dict[str, str]] = []
# Per worker thread: file key -> open dataset, least recently used first (native reads).
_THREAD = threading.local()
# Per worker process: (file key, output CRS, output transform) -> the output grid's corner
# in the file's pixels (row, column), or None where the file must be warped; bounded.
_NATIVE_OFFSETS: dict[tuple[Any, ...], tuple[int, int] | None] = {}
_NATIVE_OFFSETS_MAX = 100_000


def is_blob_href(href: str) -> bool:
    """True for an href on Azure Blob storage (``https://ACCOUNT.blob.core.windows.net/...``),
    where Planetary Computer keeps its files and a SAS token is needed."""
    return (urlsplit(href).hostname or "").endswith(".blob.core.windows.net")


def blob_container(href: str) -> str:
    """``account/container`` of an Azure Blob href (``https://ACCOUNT.blob.core.windows.net/CONTAINER/...``)."""
    parts = urlsplit(href)
    account = parts.hostname.split(".", 1)[0] if parts.hostname else ""
    container = parts.path.lstrip("/").split("/", 1)[0]
    return f"{account}/{container}"


@dataclass(frozen=True)
class SasTokenSigner:
    """Signs hrefs with a SAS token from a token endpoint, fetched when a read starts.

    Attributes:
        token_url: the endpoint; ``{token_url}/{account}/{container}`` answers
            ``{"token": ..., "msft:expiry": ISO time}`` (Planetary Computer's API).
        container_of: maps an href to the ``account/container`` its token is for.
        renew_before_s: renew a cached token this many seconds before it expires (300).
    """

    token_url: str = PLANETARY_COMPUTER_TOKEN_URL
    container_of: Callable[[str], str] = field(default=blob_container)
    renew_before_s: float = 300.0

    def sign(self, href: str) -> str:
        token = self._token(self.container_of(href))
        return f"{href}{'&' if '?' in href else '?'}{token}"

    def _token(self, container: str) -> str:
        key = (self.token_url, container)
        # One fetch at a time per process: threads reading the same container share it.
        with _TOKENS_LOCK:
            cached = _TOKENS.get(key)
            if cached is not None and cached[1] - self.renew_before_s > time.time():
                return cached[0]
            try:
                with urllib.request.urlopen(
                    f"{self.token_url.rstrip('/')}/{container}", timeout=30
                ) as resp:
                    body = json.load(resp)
                token = str(body["token"])
                expiry = datetime.fromisoformat(
                    str(body["msft:expiry"]).replace("Z", "+00:00")
                ).timestamp()
            except Exception as exc:
                raise DataError(
                    f"cannot get a SAS token for {container} from {self.token_url}: {exc}"
                ) from exc
            _TOKENS[key] = (token, expiry)
            return token


class CubehubReader(AutoParallelRioReader):
    """stackstac's reader with read-time signing and cubehub's failed-read policy.

    Configure through :func:`reader_for` (a subclass with class attributes, because
    stackstac constructs readers itself with a fixed set of arguments).
    """

    signer: ClassVar[SasTokenSigner | None] = None
    on_error: ClassVar[OnError] = "fail"
    tag: ClassVar[str] = ""
    native: ClassVar[bool] = True

    def __init__(self, *, url: str, **kwargs: Any) -> None:
        self.href = url
        super().__init__(url=self.signer.sign(url) if self.signer else url, **kwargs)

    def read(self, window: Any, **kwargs: Any) -> np.ndarray:
        """The window of the output grid: natively read where the file is on that grid,
        warped (stackstac's read) otherwise; failures as the ``on_error`` policy says."""
        try:
            key = _file_key(self.url, self.gdal_env) if self.native else None
            offset = None if key is None else self._native_offset(key)
            data: np.ndarray = (
                super().read(window, **kwargs)
                if key is None or offset is None
                else self._read_native(window, offset, key)
            )
        except Exception as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:  # GDAL's own message, under stackstac's
                cause = cause.__cause__
            if self.on_error == "missing":
                _report_missing(self.href, repr(cause), self.tag)
                nodata: np.ndarray = _nodata_for_window(window, self.fill_value, self.dtype)
                return nodata
            raise AssetReadError(
                f"cannot read {self.href} (after GDAL's retries): {cause}; fix access to it, or "
                "allow missing assets (on_read_error: missing) to count it as nodata"
            ) from exc
        return data

    def __getstate__(self) -> Any:
        state = super().__getstate__()
        state["url"] = self.href  # re-sign when unpickled elsewhere, never ship a token
        return state

    def _native_offset(self, file_key: tuple[Any, ...]) -> tuple[int, int] | None:
        """The output grid's corner in the file's pixels (row, column) when the file's CRS,
        pixel size and edges are the output grid's; None when it must be warped.

        Decided once per process for a file and output grid (opening the file in this
        thread the first time), so later tasks decide without opening it."""
        spec = self.spec
        key = (file_key, spec.epsg, tuple(spec.transform))
        if key in _NATIVE_OFFSETS:
            return _NATIVE_OFFSETS[key]
        ds = _thread_dataset(file_key, self.url, self.gdal_env)
        offset, why = _grid_offset(ds, spec.epsg, spec.transform)
        if offset is None:
            _drop_thread_dataset(file_key)  # stackstac opens its own
            log.debug("warped read of %s: %s", self.href, why)
        else:
            log.debug("native read of %s: on the output grid at (row, col) %s", self.href, offset)
        if len(_NATIVE_OFFSETS) >= _NATIVE_OFFSETS_MAX:
            _NATIVE_OFFSETS.clear()
        _NATIVE_OFFSETS[key] = offset
        return offset

    def _read_native(
        self, window: Window, offset: tuple[int, int], file_key: tuple[Any, ...]
    ) -> np.ndarray:
        """``window`` of the output grid by a plain windowed read of the file's own pixels,
        ``fill_value`` where the window lies outside the file (rasterio's boundless read
        would build a VRT)."""
        ds = _thread_dataset(file_key, self.url, self.gdal_env)
        height, width = int(window.height), int(window.width)
        row0, col0 = int(window.row_off) + offset[0], int(window.col_off) + offset[1]
        top, left = max(row0, 0), max(col0, 0)
        bottom, right = min(row0 + height, ds.height), min(col0 + width, ds.width)
        out = np.full((height, width), self.fill_value, dtype=self.dtype)
        if bottom <= top or right <= left:
            return out
        inside = Window(left, top, right - left, bottom - top)
        scale, add = self.scale_offset
        if scale == 1 and add == 0 and _nodata_is_the_mask(ds, self.dtype):
            # The file's DNs as they are, its nodata value replaced: no mask band read, no
            # masked-array copies (the common case: uint16 files, no rescaling).
            with self.gdal_env.read:
                data: np.ndarray = ds.read(1, window=inside)
            if ds.nodata is not None and ds.nodata != self.fill_value:
                data[data == ds.nodata] = self.fill_value
        else:
            with self.gdal_env.read:
                part = ds.read(
                    1,
                    window=inside,
                    out_dtype=self.dtype,
                    masked=True,  # the file's nodata becomes fill_value, as in the warped read
                )
            if scale != 1:
                part *= scale
            if add != 0:
                part += add
            data = np.ma.filled(part, fill_value=self.fill_value)
        out[top - row0 : bottom - row0, left - col0 : right - col0] = data
        return out


def _nodata_is_the_mask(ds: Any, dtype: Any) -> bool:
    """Whether band 1 of ``ds`` is of ``dtype`` (an integer type) and only its nodata value,
    if any, marks missing pixels (no mask band, alpha or per-dataset mask)."""
    flags = set(ds.mask_flag_enums[0])
    return (
        np.dtype(ds.dtypes[0]) == np.dtype(dtype)
        and np.issubdtype(np.dtype(dtype), np.integer)
        and flags <= {MaskFlags.nodata, MaskFlags.all_valid}
    )


def _grid_offset(ds: Any, epsg: int, transform: Any) -> tuple[tuple[int, int] | None, str]:
    """(row, column) of the output grid's corner in ``ds``'s pixels where the file is on that
    grid (same CRS and pixel size, edges whole pixels apart, north-up), else None and why."""
    t = ds.transform
    if ds.count != 1 or ds.driver not in MULTITHREADED_DRIVER_ALLOWLIST:
        return None, f"{ds.count} band(s), driver {ds.driver}"
    if ds.crs is None or ds.crs.to_epsg() != epsg:
        return None, f"its CRS {ds.crs} is not EPSG:{epsg}"
    if t.b or t.d or transform.b or transform.d:
        return None, "a rotated grid"
    if not (
        math.isclose(t.a, transform.a, rel_tol=1e-9)
        and math.isclose(t.e, transform.e, rel_tol=1e-9)
    ):
        return None, f"pixel size {t.a:g} x {-t.e:g}, the output's {transform.a:g}"
    col, row = (transform.c - t.c) / t.a, (transform.f - t.f) / t.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None, f"pixel edges {col - math.floor(col):.3g} px off the output grid's"
    return (round(row), round(col)), ""


def _file_key(url: str, env: LayeredEnv) -> tuple[Any, ...]:
    """What identifies an open dataset: the URL, the GDAL options, and for a local file its
    modification time and size (a file rewritten in place is opened again)."""
    try:
        stat = os.stat(url)
        version: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        version = None  # a URL: GDAL's own caches hold it for the process, too
    return url, repr(env), version


def _thread_dataset(key: tuple[Any, ...], url: str, env: LayeredEnv) -> Any:
    """This thread's open dataset of ``url`` (its :func:`_file_key` ``key``; opened under
    the ``env.open`` options)."""
    handles: OrderedDict[tuple[Any, ...], Any] | None = getattr(_THREAD, "datasets", None)
    if handles is None:
        handles = _THREAD.datasets = OrderedDict()
    ds = handles.get(key)
    if ds is not None:
        handles.move_to_end(key)
        return ds
    with env.open:
        ds = rasterio.open(url, sharing=False)  # GDAL handles never cross threads
    log.debug("opened %s in %s", url, threading.current_thread().name)
    handles[key] = ds
    while len(handles) > NATIVE_HANDLES_PER_THREAD:
        handles.popitem(last=False)[1].close()
    return ds


def _drop_thread_dataset(key: tuple[Any, ...]) -> None:
    handles = getattr(_THREAD, "datasets", None)
    ds = handles.pop(key, None) if handles else None
    if ds is not None:
        ds.close()


def reader_for(
    *,
    signer: SasTokenSigner | None = None,
    on_error: OnError = "fail",
    tag: str = "",
    native: bool = True,
) -> type[CubehubReader]:
    """The reader class for stackstac, with this signer and failed-read policy; ``tag``
    labels its missing-asset reports (see :func:`missing_assets`); ``native``: read files
    on the output grid natively (default), or warp every file."""
    if on_error not in ("fail", "missing"):
        raise InputError(f"on_read_error must be 'fail' or 'missing', got {on_error!r}")
    if signer is None and on_error == "fail" and native:
        return CubehubReader
    return type(
        "ConfiguredCubehubReader",
        (CubehubReader,),
        {"signer": signer, "on_error": on_error, "tag": tag, "native": bool(native)},
    )


def _report_missing(href: str, error: str, tag: str) -> None:
    record = {"href": href, "error": error, "tag": tag}
    log.warning("asset counted as missing: %s (%s)", href, error)
    try:
        from distributed import get_worker

        get_worker().log_event(MISSING_EVENT, record)
    except ValueError:  # not inside a Dask worker: keep it in this process
        _LOCAL_MISSING.append(record)


def missing_assets(client: Any | None = None, *, tag: str | None = None) -> list[str]:
    """Hrefs counted as missing so far, sorted, each once: from the cluster's events (or this
    process's reads without a cluster); only those reported with ``tag`` when given.

    A read task that reports an asset ends after its report reaches the scheduler (a
    worker's messages arrive in order), so once a computation is done, its reports are here.
    """
    records = _LOCAL_MISSING if client is None else [m for _, m in client.get_events(MISSING_EVENT)]
    return sorted({r["href"] for r in records if tag is None or r.get("tag") == tag})
