"""Where outputs go: fsspec URLs, their options, and credentials that never leak.

Any fsspec URL works: a local path, ``s3://`` (s3fs), ``gs://`` (gcsfs) and ``az://``
(adlfs) when those packages are installed.

Credentials are never options. They come from where the cloud SDKs look for them — for
S3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), a named
``profile`` in ``~/.aws``, or the IAM role of the machine or pod. Options name only *where*
(``endpoint_url``, ``profile``, ``anon``), so they can be written into the Dask task graph,
the store's provenance and its STAC record without carrying a secret: each Dask worker
finds the credentials in its own environment (on Kubernetes, a Secret mounted as
environment variables or a service-account role). :func:`check_no_secrets` refuses options
that hold secrets; :func:`redact` masks them in anything that is logged or stored.

The S3 endpoint can also come from ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, which
botocore reads itself.

Importing this module adds a filter to botocore's request loggers: at DEBUG level they
print each request's ``Authorization`` header, which names the access key; the filter
masks it (and signatures and session tokens) in this process and in every Dask worker
that writes a store.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from cubehub.errors import InputError, OutputLocationError

__all__ = [
    "check_no_secrets",
    "close_s3_session",
    "filesystem",
    "probe_filesystem",
    "protocol_of",
    "redact",
    "storage_errors",
    "storage_options",
]

#: Option names (any nesting level, case-insensitive) that hold secrets.
_SECRET_NAME = re.compile(
    r"(^key$|secret|token|password|passwd|credential|account_key|sas|connection_string|"
    r"private|signature|authorization)",
    re.IGNORECASE,
)
#: ``scheme://user:password@host`` in a URL.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
#: fsspec packages per protocol, for the "install it" message.
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
REDACTED = "***"
#: Seconds to wait for an object store when checking it before a job (connect, read).
PROBE_TIMEOUTS = (5, 15)


#: What botocore's DEBUG logs show of credentials: key id, signature, session token.
_LOGGED_CREDENTIALS = re.compile(
    r"(Credential=|X-Amz-Credential=|Signature=|X-Amz-Security-Token['\"]?\s*[:=]\s*b?['\"]?)[^,&\s'\"]+",
    re.IGNORECASE,
)


class _MaskLoggedCredentials(logging.Filter):
    """Masks credentials in the request logs of botocore (which aiobotocore shares)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _LOGGED_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


for _name in ("botocore.endpoint", "botocore.auth", "botocore.awsrequest"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _MaskLoggedCredentials) for f in _logger.filters):
        _logger.addFilter(_MaskLoggedCredentials())


def protocol_of(url: str) -> str:
    """The URL's protocol: ``"file"`` for local paths, else the scheme (``"s3"``, ``"gs"``)."""
    match = re.match(r"^([a-z][a-z0-9+.-]*)://", url, re.IGNORECASE)
    return match.group(1).lower() if match else "file"


def storage_options(
    url: str,
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    anonymous: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """fsspec options for ``url``, without secrets.

    Args:
        url: where the store goes, e.g. ``s3://bucket/composites/graz.zarr``.
        endpoint_url: S3 endpoint of a non-AWS object store (MinIO, SeaweedFS, Ceph, ...),
            e.g. ``http://127.0.0.1:8333``; default None (AWS, or ``AWS_ENDPOINT_URL``).
        profile: named AWS profile in ``~/.aws/credentials``; default None.
        anonymous: unsigned requests (public buckets); default False.
        extra: more fsspec options, e.g. ``{"client_kwargs": {"region_name": "eu-central-1"}}``;
            refused if they hold a secret (see :func:`check_no_secrets`).

    Raises:
        InputError: options that do not fit the protocol, or that hold secrets.
    """
    options = dict(extra or {})
    check_no_secrets(options)
    protocol = protocol_of(url)
    if protocol in ("s3", "s3a"):
        if endpoint_url:
            if not re.match(r"^https?://[^/\s]+", endpoint_url):
                raise InputError(
                    f"endpoint_url must be an http(s) URL such as http://127.0.0.1:8333, got {endpoint_url!r}"
                )
            options["endpoint_url"] = endpoint_url
        if profile:
            options["profile"] = profile
        if anonymous:
            options["anon"] = True
    elif endpoint_url or profile:
        raise InputError(
            f"endpoint_url and profile apply to s3:// outputs only; {url!r} is {protocol}://"
        )
    elif anonymous:
        # gcsfs spells anonymous access token="anon"; adlfs uses anon=True.
        options.update({"token": "anon"} if protocol in ("gs", "gcs") else {"anon": True})
    return options


def check_no_secrets(options: Mapping[str, Any], where: str = "storage options") -> None:
    """Raise :class:`InputError` if ``options`` (at any depth) name a secret.

    A secret in the options would be pickled into every task of the Dask graph and
    written into provenance; it belongs in the environment or a credentials file.
    """
    found = sorted(_secret_paths(options))
    if found:
        raise InputError(
            f"{where} must not hold credentials (found {', '.join(found)}); put them in the "
            "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, "
            "AZURE_STORAGE_*), a named profile, or use the machine's IAM role"
        )


def _secret_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            path = f"{prefix}{key}"
            if _SECRET_NAME.search(str(key)) and not (str(key) == "token" and inner == "anon"):
                yield path
            else:
                yield from _secret_paths(inner, path + ".")


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-named entries and URL passwords masked, for logs."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _SECRET_NAME.search(str(k)) and v != "anon" else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    return value


def filesystem(url: str, options: Mapping[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and path of ``url``.

    Raises:
        InputError: unknown protocol, its fsspec package is not installed, or the options
            hold a secret.
    """
    check_no_secrets(options or {})
    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(options or {}))
    except ImportError:
        package = _PACKAGES.get(protocol_of(url), f"the fsspec package for {protocol_of(url)}://")
        raise InputError(
            f"writing {protocol_of(url)}:// URLs needs {package}; install it (pip install {package}) "
            "or choose another output"
        ) from None
    except ValueError as exc:
        raise InputError(f"cannot use output {redact(url)!r}: {exc}; use a local path or s3://, gs://, az://") from None
    return fs, str(path)


@contextmanager
def probe_filesystem(url: str, options: Mapping[str, Any] | None = None) -> Iterator[tuple[AbstractFileSystem, str]]:
    """Like :func:`filesystem`, but failing fast: short timeouts, no retries, fresh credentials.

    For checks before a job; the filesystem the job itself writes with keeps the
    defaults (retries with back-off), which suit long runs. A context manager: the probe's
    connection is closed on exit.
    """
    if protocol_of(url) not in ("s3", "s3a"):
        yield filesystem(url, options)
        return
    opts = dict(options or {})
    config = dict(opts.get("config_kwargs") or {})
    connect, read = PROBE_TIMEOUTS
    config.update(connect_timeout=connect, read_timeout=read, retries={"max_attempts": 1, "mode": "standard"})
    # Not from fsspec's cache: credentials are looked up again, as the job will.
    opts.update(config_kwargs=config, skip_instance_cache=True)
    fs, path = filesystem(url, opts)
    fs.retries = 1  # s3fs's own retry loop, on top of botocore's
    try:
        yield fs, path
    finally:
        close_s3_session(fs)


def close_s3_session(fs: AbstractFileSystem) -> None:
    """Close a throw-away s3fs filesystem's connection now, from this thread.

    Left to the garbage collector, s3fs closes it from whichever event loop happens to run
    the collection (often zarr's), which fails and prints "Task exception was never
    retrieved" (s3fs 2026.9).
    """
    creator = getattr(fs, "_s3creator", None)
    if creator is not None:
        type(fs).close_session(fs.loop, creator)


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn object-store errors into :class:`OutputLocationError` messages that say what to fix."""
    where = redact(url)
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        raise OutputLocationError(f"cannot use {where}: {_explain(exc, url)}") from exc


def _explain(exc: BaseException, url: str) -> str:
    name = type(exc).__name__
    text = redact(str(exc))
    bucket = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    if name == "NoCredentialsError" or "Unable to locate credentials" in text:
        return (
            "no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
            "in the environment of this process and of every Dask worker, or set anonymous for a "
            "public bucket"
        )
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError") or (
        "Could not connect" in text
    ):
        return f"the object store is unreachable ({text}); check endpoint_url / AWS_ENDPOINT_URL and the network"
    if isinstance(exc, FileNotFoundError) and bucket:
        return f"bucket {bucket!r} does not exist ({text}); check its spelling or create it first"
    if isinstance(exc, PermissionError):
        return (
            f"access denied ({text}); check that the credentials are right and allowed to "
            f"write to bucket {bucket!r}"
            if bucket
            else f"permission denied ({text}); choose a location you can write"
        )
    return f"{name}: {text}"
