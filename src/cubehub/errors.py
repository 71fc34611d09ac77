"""Exception hierarchy and the exit codes the CLI maps them to.

Every error cubehub raises on purpose derives from :class:`CubehubError` and from the
builtin that fits, so ``except ValueError`` in user code keeps working. The message says
what was wrong and how to fix it; the CLI prints it on one line without a traceback.
Warnings derive from :class:`CubehubWarning`; the CLI prints each on one line too.

Errors raised in tasks on Dask workers travel back to the client by pickle and keep their
class there (so their exit code): see :meth:`CubehubError.__reduce__`.
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

    def __reduce__(self) -> tuple[type[CubehubError], tuple[object, ...], dict[str, object]]:
        """Rebuild by calling the class with the message, as the builtins' pickling does.

        Without it, distributed's exception pickling (tblib) rebuilds classes that mix two
        builtins of different layouts, such as ``AssetReadError(DataError, OSError)``, with
        the wrong ``__new__`` and fails ("RuntimeError.__new__(AssetReadError) is not safe"),
        so an error from a worker reached the client as an unexpected one.

        Pickling also replaces, in place, every exception of a non-builtin class in the
        chain (``__cause__``, ``__context__``: GDAL's, botocore's, aiohttp's) by a
        ``RuntimeError`` carrying its class name and message. Such classes often cannot be
        rebuilt in another process, and one that fails makes distributed send a plain
        ``Exception`` instead of the whole error. In place, because tblib reads the chain
        after calling this; an error that is never pickled keeps its chain for ``--debug``.
        """
        _portable_chain(self)
        return type(self), self.args, dict(self.__dict__)


class InputError(CubehubError, ValueError):
    """An argument, job file or option is invalid; nothing has been computed yet."""

    exit_code = ExitCode.BAD_INPUT


class NotFoundError(InputError, LookupError):
    """A named thing that was asked for (a layer, a tile matrix set, a page) does not exist."""


class OutputLocationError(InputError, PermissionError):
    """The output location cannot be written (permissions, missing bucket, credentials), or
    stopped taking writes during a job (unreachable endpoint, disk full); tiles recorded
    complete before are kept, and a rerun resumes."""


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


class CubehubWarning(UserWarning):
    """Base class of the warnings cubehub gives: something works, but likely not as meant."""


class LocalPathWarning(CubehubWarning):
    """A path on this machine where the work runs elsewhere (a Kubernetes pod)."""


class EmptySeasonWarning(CubehubWarning):
    """A season has no acquisition (or no clear one): its layers are NaN, ``valid_count`` 0.

    The message names the season and says whether a cloud filter emptied it.
    """


class ServerError(CubehubError, RuntimeError):
    """A local server cubehub starts (STAC API, file server, S3) failed to start."""

    exit_code = ExitCode.SERVER


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if its class is a builtin or cubehub's (its chain made portable too), else a
    ``RuntimeError("<module>.<class>: <message>")`` standing in for it."""
    if isinstance(exc, CubehubError) or type(exc).__module__ == "builtins":
        _portable_chain(exc)
        return exc
    return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


def _portable_chain(exc: BaseException) -> None:
    if exc.__cause__ is not None:
        exc.__cause__ = _portable(exc.__cause__)
    if exc.__context__ is not None:
        exc.__context__ = _portable(exc.__context__)
