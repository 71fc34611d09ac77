"""Exception hierarchy and the exit codes the CLI maps them to.

Every error cubehub raises on purpose derives from :class:`CubehubError` and from the
builtin that fits, so ``except ValueError`` in user code keeps working. The message says
what was wrong and how to fix it; the CLI prints it on one line without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``cubehub`` command (documented in the README)."""

    OK = 0
    #: Unexpected internal error (a bug): one line; the traceback with ``--debug``.
    INTERNAL = 1
    #: Bad input: arguments, job file, search parameters, output location.
    BAD_INPUT = 2
    #: The data could not be read or was not as described (failed asset reads, empty search).
    DATA = 3
    #: The Dask cluster could not be reached, created, or lost too many workers.
    CLUSTER = 4
    #: A server cubehub starts itself (demo STAC API, file server) failed.
    SERVER = 5
    #: Interrupted by the user (Ctrl-C) or a signal; completed tiles are kept.
    INTERRUPTED = 130


class CubehubError(Exception):
    """Base class of every error cubehub raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(CubehubError, ValueError):
    """An argument, job file or option is invalid; nothing has been computed yet."""

    exit_code = ExitCode.BAD_INPUT


class OutputLocationError(InputError, PermissionError):
    """The output location cannot be written (permissions, missing bucket, credentials)."""


class StoreMismatchError(InputError):
    """An existing output store does not match the job (grid, CRS or variables differ)."""


class DataError(CubehubError, RuntimeError):
    """Input data could not be read or does not match its metadata."""

    exit_code = ExitCode.DATA


class EmptySearchError(DataError, LookupError):
    """A search matched no items."""


class AssetReadError(DataError, OSError):
    """An asset could not be read after retries; the message names its href."""


class ClusterError(CubehubError, RuntimeError):
    """A Dask cluster could not be created or reached, or lost its workers."""

    exit_code = ExitCode.CLUSTER


class VersionMismatchError(ClusterError):
    """Client, scheduler and workers run package versions that differ where it matters."""


class ServerError(CubehubError, RuntimeError):
    """A local server cubehub starts (STAC API, file server, S3) failed to start."""

    exit_code = ExitCode.SERVER
