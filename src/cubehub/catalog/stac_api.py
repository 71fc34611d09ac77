"""Requests to a STAC API: one HTTP session with timeouts and retries, and errors that name
the API.

Every request (the landing page, /collections, each page of a search) has a connect and a
read timeout and is retried with back-off after a timeout, a dropped connection or a 429/5xx
answer (settings ``cubehub.stac``). An API that accepts connections and never answers fails
after ``(retries + 1) * read_timeout`` seconds and a few seconds of back-off with a
:class:`~cubehub.errors.DataError` naming its URL (without a password), instead of hanging.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pystac

from cubehub import config
from cubehub.credentials import redact
from cubehub.errors import DataError, InputError

__all__ = ["RequestPolicy", "api_items", "check_collections", "open_api"]

#: HTTP answers worth another try: rate limits and server-side failures.
_RETRY_STATUS = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class RequestPolicy:
    """Timeouts (seconds) and retries of each request; see the ``cubehub.stac`` settings."""

    connect_timeout: float
    read_timeout: float
    retries: int

    @classmethod
    def from_settings(cls) -> RequestPolicy:
        return cls(
            float(config.get("stac.connect_timeout")),
            float(config.get("stac.read_timeout")),
            int(config.get("stac.retries")),
        )

    def session(self) -> Any:
        """pystac-client's HTTP session with these timeouts and retries on every request,
        GET and POST alike (a search is a read)."""
        from pystac_client.stac_api_io import StacApiIO
        from urllib3 import Retry

        retry = Retry(
            total=self.retries,
            backoff_factor=0.5,
            status_forcelist=_RETRY_STATUS,
            allowed_methods=None,
            raise_on_status=False,
        )
        return StacApiIO(timeout=(self.connect_timeout, self.read_timeout), max_retries=retry)

    def error(self, url: str, action: str, exc: Exception) -> DataError:
        """The error for a failed ``action`` ("open", "search") at ``url``."""
        text, where = redact(str(exc)), redact(url)
        if "timed out" in text.lower() or "timeout" in text.lower():
            return DataError(
                f"the STAC API at {where} did not answer the {action} within "
                f"{self.read_timeout:g} s, {self.retries + 1} tries; check the URL and that the "
                "API is up, or raise the cubehub.stac.read_timeout setting "
                "(DASK_CUBEHUB__STAC__READ_TIMEOUT)"
            )
        return DataError(f"cannot {action} the STAC API at {where}: {text}")


def open_api(url: str, policy: RequestPolicy) -> Any:
    """The ``pystac_client.Client`` of the API at ``url``, requests bounded by ``policy``."""
    # Imported here: pystac-client loads jsonschema, a second of start-up for every command.
    import pystac_client

    timeouts = (policy.connect_timeout, policy.read_timeout)
    try:
        return pystac_client.Client.open(url, stac_io=policy.session(), timeout=timeouts)
    except Exception as exc:  # pystac-client raises several unrelated types here
        raise policy.error(url, "open", exc) from None


def check_collections(client: Any, collections: Sequence[str]) -> None:
    """Refuse collections the API does not have, listing those it has."""
    try:
        available = {c.id for c in client.get_collections()}
    except Exception:  # an API without /collections: let the search itself decide
        return
    unknown = [c for c in collections if c not in available]
    if unknown:
        raise InputError(
            f"unknown collection {', '.join(unknown)}; this API has: {', '.join(sorted(available))}"
        )


def api_items(
    client: Any,
    url: str,
    policy: RequestPolicy,
    search: Mapping[str, Any],
    keep: Callable[[pystac.Item], bool],
    max_items: int | None,
) -> list[pystac.Item]:
    """The items of ``client.search(**search)`` that ``keep`` accepts, page by page, at most
    ``max_items``."""
    from pystac_client.exceptions import APIError

    items: list[pystac.Item] = []
    with warnings.catch_warnings():
        # rustac and others omit numberMatched; that is not a problem worth a warning.
        warnings.filterwarnings("ignore", message="numberMatched or context.matched")
        try:
            for item in client.search(**search).items():
                if not keep(item):  # what the server could not (or did not) filter
                    continue
                items.append(item)
                if max_items is not None and len(items) >= max_items:
                    break
        except APIError as exc:
            raise policy.error(url, "search", exc) from None
    return items
