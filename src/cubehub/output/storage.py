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

import asyncio
import errno
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import fsspec
import fsspec.asyn
from fsspec.spec import AbstractFileSystem

from cubehub.credentials import REDACTED, is_secret_name, redact
from cubehub.errors import CubehubError, InputError, OutputLocationError

logger = logging.getLogger(__name__)

__all__ = [
    "check_no_secrets",
    "check_output",
    "check_writable",
    "close_s3_session",
    "closing_on_own_loop",
    "explain_failure",
    "filesystem",
    "is_storage_failure",
    "probe_filesystem",
    "protocol_of",
    "storage_errors",
    "storage_options",
]

#: fsspec packages per protocol, for the "install it" message.
_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
}
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


#: Endings of files that are not Zarr stores, and what each format is.
_NOT_ZARR = {
    ".tif": "GeoTIFF",
    ".tiff": "GeoTIFF",
    ".cog": "GeoTIFF",
    ".nc": "NetCDF",
    ".nc4": "NetCDF",
    ".h5": "HDF5",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".json": "JSON",
}


def check_store_url(url: str) -> str:
    """``url`` if it can name a Zarr store; :class:`InputError` for a file name of another format.

    cubehub writes Zarr stores (a folder of chunks), whatever the name says: an output named
    ``graz.tif`` would become a Zarr folder called ``graz.tif`` that no GIS opens.
    """
    name = url.rstrip("/")
    for ending, kind in _NOT_ZARR.items():
        if name.lower().endswith(ending):
            raise InputError(
                f"output {redact(url)} names a {kind} file, but cubehub writes Zarr stores (a "
                f"folder): name it {redact(name[: -len(ending)])}.zarr; for a {kind} of one "
                "layer, open the store (cubehub.open_composite) and write that layer, e.g. with "
                "rio.to_raster"
            )
    return url


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
            if is_secret_name(str(key)) and not (str(key) == "token" and inner == "anon"):
                yield path
            else:
                yield from _secret_paths(inner, path + ".")


def filesystem(
    url: str, options: Mapping[str, Any] | None = None
) -> tuple[AbstractFileSystem, str]:
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
        raise InputError(
            f"cannot use output {redact(url)!r}: {exc}; use a local path or s3://, gs://, az://"
        ) from None
    if protocol_of(url) in ("s3", "s3a"):
        closing_on_own_loop(fs)
    return fs, str(path)


@contextmanager
def probe_filesystem(
    url: str, options: Mapping[str, Any] | None = None
) -> Iterator[tuple[AbstractFileSystem, str]]:
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
    config.update(
        connect_timeout=connect, read_timeout=read, retries={"max_attempts": 1, "mode": "standard"}
    )
    # Not from fsspec's cache: credentials are looked up again, as the job will.
    opts.update(config_kwargs=config, skip_instance_cache=True)
    fs, path = filesystem(url, opts)
    fs.retries = 1  # s3fs's own retry loop, on top of botocore's
    try:
        yield fs, path
    finally:
        close_s3_session(fs)


def close_s3_session(fs: AbstractFileSystem) -> None:
    """Close a throw-away s3fs filesystem's connection now, on the filesystem's own loop."""
    creator = getattr(fs, "_s3creator", None)
    if creator is not None:
        _close_on_own_loop(fs.loop, creator)


def closing_on_own_loop(fs: AbstractFileSystem) -> AbstractFileSystem:
    """``fs``, an s3fs filesystem not yet connected, made to close its connection on its own
    event loop when it is garbage-collected (see :func:`_close_on_own_loop`)."""
    # s3fs registers ``self.close_session`` as the connection's finaliser when it connects;
    # an instance attribute comes before the class's static method.
    fs.close_session = _close_on_own_loop
    return fs


def _close_on_own_loop(loop: asyncio.AbstractEventLoop | None, creator: Any) -> None:
    """Close an s3fs connection (its aiobotocore client ``creator``) on ``loop``, where it
    was opened: s3fs's own finaliser (2026.9) closes it on whichever loop runs in the
    collecting thread (a notebook kernel's, zarr's), which fails and prints "Task exception
    was never retrieved ... attached to a different loop". Closing twice is harmless.
    """
    if loop is None or loop.is_closed() or not loop.is_running():
        return  # interpreter exit: the connection goes with the process
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # collected on fsspec's own loop thread: it cannot wait for itself
        loop.create_task(creator.__aexit__(None, None, None))
        return
    try:
        fsspec.asyn.sync(loop, creator.__aexit__, None, None, None, timeout=1)
    except Exception as exc:  # a connection that cannot close is not worth failing for
        logger.debug("could not close an S3 connection: %s", exc)


@contextmanager
def storage_errors(url: str, what: str = "") -> Iterator[None]:
    """Turn object-store and disk errors into :class:`OutputLocationError` messages that say
    what to fix; ``what`` names what was being done (e.g. ``"writing tile r0000c0001 to "``)."""
    try:
        yield
    except CubehubError:
        raise
    except Exception as exc:
        raise explain_failure(exc, url, what or "cannot use ") from exc


def explain_failure(exc: BaseException, url: str, what: str) -> OutputLocationError:
    """An :class:`OutputLocationError` for storage error ``exc``: ``what`` (e.g. ``"cannot
    write tile r0000c0001 to "``), the store's URL without secrets, and what to fix."""
    return OutputLocationError(f"{what}{redact(url)}: {_explain(exc, url)}")


#: Errors a store write raises when the storage itself fails, by the module of their class.
_STORAGE_MODULES = ("botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs", "azure", "aiohttp")


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised while a store was written, is the storage's fault (an object
    store that is unreachable or refuses, missing credentials, a full or read-only disk)
    rather than a bug or bad data. cubehub's own errors are never counted: they say what
    went wrong themselves."""
    module = type(exc).__module__.split(".", 1)[0]
    if isinstance(exc, CubehubError) or module == "distributed":  # e.g. CommClosedError
        return False
    return isinstance(exc, OSError) or module in _STORAGE_MODULES


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
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device or quota ({exc.strerror}); free space there or choose "
            "another output"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return f"the file system is read-only ({exc.strerror}); choose another output"
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


def check_writable(
    url: str, storage_options: Mapping[str, Any] | None = None, *, overwrite: bool = False
) -> None:
    """Fail fast, before any compute, when ``url`` cannot take a new store.

    Checks the protocol's package, the bucket, the credentials and the endpoint (by writing
    and deleting a probe object), or for local paths that the nearest existing folder is
    writable.

    Raises:
        OutputLocationError: the location cannot be written; the message says why.
        InputError: a store exists there and ``overwrite`` is False.
    """
    with probe_filesystem(url, storage_options) as (fs, path), storage_errors(url):
        if protocol_of(url) != "file":
            bucket = path.split("/", 1)[0]
            fs.info(bucket)  # FileNotFoundError for a misspelled bucket, before writing
        if fs.exists(path) and not overwrite:
            raise InputError(
                f"{redact(url)} already exists; choose a new output path or allow overwriting it"
            )
        if protocol_of(url) == "file":
            _check_local_writable(url, path)
            return
        # Beside the store, not in it: a probe inside would make the path look taken.
        parent = path.rstrip("/").rsplit("/", 1)[0]
        probe = f"{parent}/.cubehub-write-probe-{uuid.uuid4().hex}"
        fs.pipe(probe, b"")
        fs.rm(probe)
        fs.invalidate_cache(parent)


def _check_local_writable(url: str, path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputLocationError(
            f"cannot write {url}: it is a file, not a folder; choose another output path"
        )
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputLocationError(
            f"cannot write {url}: {parent} is not a writable folder; choose another output path"
        )
    probe = os.path.join(parent, f".cubehub-write-probe-{uuid.uuid4().hex}")  # one per writer
    try:  # os.access says yes to root even on read-only mounts and /proc
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise OutputLocationError(
            f"cannot write {url}: {parent} is not writable ({exc.strerror}); choose another output path"
        ) from None


def check_output(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Everything :func:`check_writable` checks except that ``url`` is free: for a job that
    may resume or extend the store there. Call it before searching, to fail in seconds."""
    check_writable(url, storage_options, overwrite=True)
