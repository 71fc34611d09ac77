"""The objects of the Zarr store kind, below its protocol: writing one (conditionally, for
the creation claim), the marker that says who creates a store, and zarr's store wrapped so
that a failed chunk write names its object.

A writer claims a store's creation by creating its marker only if no marker exists: one
atomic request, ``If-None-Match: *`` on object stores (s3fs's ``mode="create"``; SeaweedFS,
MinIO and AWS S3 honour it), a hard link of the complete object on local disks.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import zarr.abc.store
import zarr.storage
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem
from zarr.core.buffer import Buffer

from cubehub import __version__
from cubehub.errors import CubehubError
from cubehub.output.completion import TileLayout
from cubehub.output.layout import LAYOUT_VERSION
from cubehub.output.storage import explain_failure

__all__ = ["CREATE_LEASE_S", "PARTIAL", "Marker", "NamedWrites", "put_object"]

#: Suffix of an object being written locally (zarr's chunks too), not yet in place.
PARTIAL = ".partial"


def put_object(
    fs: AbstractFileSystem, target: str, data: bytes, *, exclusive: bool = False
) -> bool:
    """Write one object (local folders are made); with ``exclusive`` only if it does not
    exist yet, atomically. Whether it was written (False: it existed).

    Locally the exclusive write is a hard link of a complete temporary file, so no reader
    ever sees the object half-written (``O_EXCL`` where links are not supported).
    """
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(os.path.dirname(target), exist_ok=True)
        if exclusive:
            partial = f"{target}.{uuid.uuid4().hex}{PARTIAL}"
            with open(partial, "wb") as f:
                f.write(data)
            try:
                os.link(partial, target)
            except FileExistsError:
                return False
            except OSError:  # no hard links here
                return _exclusive_write(target, data)
            finally:
                os.unlink(partial)
            return True
    try:
        fs.pipe_file(target, data, mode="create" if exclusive else "overwrite")
    except FileExistsError:
        return False
    except OSError as exc:
        if exclusive and _precondition_failed(exc):
            return False
        raise
    return True


def _precondition_failed(exc: OSError) -> bool:
    """Whether an object store refused a conditional write because the object exists: HTTP
    412. s3fs raises FileExistsError only when the answer names the If-None-Match
    condition, which SeaweedFS's does not."""
    response = getattr(exc.__cause__, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return bool(error.get("Code") == "PreconditionFailed" or status == 412)


def _exclusive_write(target: str, data: bytes) -> bool:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


#: A store left in state "creating" for longer than this (seconds) by a writer that cannot
#: be checked is taken as abandoned and recreated.
CREATE_LEASE_S = 600.0


@dataclass(frozen=True)
class Marker:
    """The store's marker object (:data:`~cubehub.output.layout.MARKER`): its state, its
    tiles, and the writer (host, process id, time in epoch seconds) that wrote it."""

    state: Literal["creating", "ready"]
    layout: TileLayout
    host: str
    pid: int
    time: float

    @classmethod
    def now(cls, state: Literal["creating", "ready"], layout: TileLayout) -> Marker:
        return cls(state, layout, socket.gethostname(), os.getpid(), time.time())

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "cubehub_layout": LAYOUT_VERSION,
                "state": self.state,
                "host": self.host,
                "pid": self.pid,
                "time": self.time,
                "cubehub_version": __version__,
                "tiles": self.layout.to_json(),
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Marker | None:
        try:
            d = json.loads(raw)
            return cls(
                d["state"],
                TileLayout.from_json(d["tiles"]),
                d["host"],
                int(d["pid"]),
                float(d["time"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # torn write of a creating store

    def abandoned(self) -> bool:
        """A creation that will never finish: its writer is gone, or its lease ran out."""
        if self.state != "creating":
            return False
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        return time.time() - self.time > CREATE_LEASE_S


class NamedWrites(zarr.storage.WrapperStore[zarr.abc.store.Store]):
    """A store whose failed writes raise :class:`~cubehub.errors.OutputLocationError` naming
    the object and what to fix (unreachable endpoint, no credentials, disk full), where they
    happen: on the worker that writes the chunk, in a form that crosses distributed's pickle
    (a botocore error chained to aiohttp's would reach the client as a bare ``Exception``)."""

    def __init__(self, store: zarr.abc.store.Store, url: str) -> None:
        super().__init__(store)
        self.url = url

    def _with_store(self, store: zarr.abc.store.Store) -> NamedWrites:
        return type(self)(store, self.url)

    async def set(self, key: str, value: Buffer) -> None:
        try:
            await self._store.set(key, value)
        except CubehubError:
            raise
        except Exception as exc:
            raise explain_failure(exc, self.url, f"cannot write {key} to ") from exc
