"""Where an Icechunk repository lives: local paths, ``s3://`` and ``gs://`` (credentials
from the environment, never options), and the one check that the package is installed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cubehub.credentials import redact
from cubehub.errors import InputError
from cubehub.output.storage import check_no_secrets, protocol_of

__all__ = ["icechunk_module", "icechunk_storage"]


def icechunk_module() -> Any:
    """The ``icechunk`` package, or an error that says how to install it."""
    try:
        import icechunk
    except ImportError:
        raise InputError(
            "store_kind icechunk needs the icechunk package: pip install 'cubehub[icechunk]'"
        ) from None
    return icechunk


def icechunk_storage(url: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """Icechunk storage for ``url``: a local path, ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

    S3 options used: ``endpoint_url`` (or ``AWS_ENDPOINT_URL``), ``anon``,
    ``client_kwargs.region_name`` (or ``AWS_REGION``, default us-east-1).
    """
    ic = icechunk_module()
    options = dict(storage_options or {})
    check_no_secrets(options)
    protocol = protocol_of(url)
    if protocol == "file":
        return ic.local_filesystem_storage(os.path.abspath(url))
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    if protocol in ("s3", "s3a"):
        if options.get("profile"):
            raise InputError(
                "icechunk stores read S3 credentials from AWS_* environment variables; unset profile"
            )
        endpoint = (
            options.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        region = (options.get("client_kwargs") or {}).get("region_name") or os.environ.get(
            "AWS_REGION", "us-east-1"
        )
        anonymous = bool(options.get("anon"))
        return ic.s3_storage(
            bucket=bucket,
            prefix=prefix or None,
            region=region,
            endpoint_url=endpoint,
            allow_http=bool(endpoint and endpoint.startswith("http://")),
            force_path_style=bool(endpoint),
            anonymous=anonymous or None,
            from_env=None if anonymous else True,
        )
    if protocol in ("gs", "gcs"):
        return ic.gcs_storage(bucket=bucket, prefix=prefix or None, from_env=True)
    raise InputError(
        f"icechunk stores support local paths, s3:// and gs://, not {protocol}:// ({redact(url)})"
    )
