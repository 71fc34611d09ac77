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
  ``cubehub-missing-asset`` event on the Dask scheduler (see :func:`missing_assets`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import numpy as np
from stackstac.rio_reader import AutoParallelRioReader
from stackstac.rio_reader import nodata_for_window as _nodata_for_window

from cubehub.errors import AssetReadError, DataError, InputError

OnError = Literal["fail", "missing"]
MISSING_EVENT = "cubehub-missing-asset"
PLANETARY_COMPUTER_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
log = logging.getLogger(__name__)

# Per worker process: (token endpoint, container key) -> (token, expiry as epoch seconds).
_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()
_LOCAL_MISSING: list[dict[str, str]] = []


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
                with urllib.request.urlopen(f"{self.token_url.rstrip('/')}/{container}", timeout=30) as resp:
                    body = json.load(resp)
                token = str(body["token"])
                expiry = datetime.fromisoformat(str(body["msft:expiry"]).replace("Z", "+00:00")).timestamp()
            except Exception as exc:
                raise DataError(f"cannot get a SAS token for {container} from {self.token_url}: {exc}") from exc
            _TOKENS[key] = (token, expiry)
            return token


class CubehubReader(AutoParallelRioReader):
    """stackstac's reader with read-time signing and cubehub's failed-read policy.

    Configure through :func:`reader_for` (a subclass with class attributes, because
    stackstac constructs readers itself with a fixed set of arguments).
    """

    signer: ClassVar[SasTokenSigner | None] = None
    on_error: ClassVar[OnError] = "fail"

    def __init__(self, *, url: str, **kwargs: Any) -> None:
        self.href = url
        super().__init__(url=self.signer.sign(url) if self.signer else url, **kwargs)

    def read(self, window: Any, **kwargs: Any) -> np.ndarray:
        try:
            return super().read(window, **kwargs)
        except Exception as exc:
            cause = exc.__cause__ or exc
            if self.on_error == "missing":
                _report_missing(self.href, repr(cause))
                return _nodata_for_window(window, self.fill_value, self.dtype)
            raise AssetReadError(
                f"cannot read {self.href} (after GDAL's retries): {cause}; fix access to it, or "
                "allow missing assets (on_read_error: missing) to count it as nodata"
            ) from exc

    def __getstate__(self) -> Any:
        state = super().__getstate__()
        state["url"] = self.href  # re-sign when unpickled elsewhere, never ship a token
        return state


def reader_for(*, signer: SasTokenSigner | None = None, on_error: OnError = "fail") -> type[CubehubReader]:
    """The reader class for stackstac, with this signer and failed-read policy."""
    if on_error not in ("fail", "missing"):
        raise InputError(f"on_read_error must be 'fail' or 'missing', got {on_error!r}")
    if signer is None and on_error == "fail":
        return CubehubReader
    return type("ConfiguredCubehubReader", (CubehubReader,), {"signer": signer, "on_error": on_error})


def _report_missing(href: str, error: str) -> None:
    record = {"href": href, "error": error}
    log.warning("asset counted as missing: %s (%s)", href, error)
    try:
        from distributed import get_worker

        get_worker().log_event(MISSING_EVENT, record)
    except ValueError:  # not inside a Dask worker: keep it in this process
        _LOCAL_MISSING.append(record)


def missing_assets(client: Any | None = None) -> list[str]:
    """Hrefs counted as missing so far, from the cluster's events (or this process)."""
    if client is None:
        return [r["href"] for r in _LOCAL_MISSING]
    return [msg["href"] for _, msg in client.get_events(MISSING_EVENT)]
