"""cubehub's errors keep their class, message and exit code when raised on a Dask worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from distributed import Client
from distributed.core import clean_exception, error_message

from cubehub import errors
from cubehub.errors import AssetReadError, CubehubError


def _every_error_class() -> Iterator[type[CubehubError]]:
    pending: list[type[CubehubError]] = [CubehubError]
    while pending:
        cls = pending.pop()
        yield cls
        pending += cls.__subclasses__()


ERRORS = sorted(_every_error_class(), key=lambda c: c.__name__)


class ForeignError(Exception):
    """Like GDAL's CPLE errors: a class that cannot be rebuilt from its pickle."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code

    @property
    def args(self) -> tuple[object, ...]:  # type: ignore[override]
        return (self.code,)


def _raise(cls: type[CubehubError], message: str) -> None:
    try:
        raise ForeignError(7, "the library's own reason")
    except ForeignError as exc:
        raise cls(message) from exc


@pytest.mark.parametrize("cls", ERRORS, ids=[c.__name__ for c in ERRORS])
def test_every_error_survives_distributeds_pickle(cls: type[CubehubError]) -> None:
    try:
        _raise(cls, "what was wrong; how to fix it")
    except CubehubError as raised:
        # What a worker sends for a failed task (pickled bytes), and what the client makes of it.
        sent = error_message(raised)["exception"].data
        _, back, _ = clean_exception(sent)
    assert type(back) is cls and str(back) == "what was wrong; how to fix it"
    assert back.exit_code == cls.exit_code
    # The foreign cause arrives as a builtin stand-in with its class and message.
    assert isinstance(back.__cause__, RuntimeError)
    assert "ForeignError: the library's own reason" in str(back.__cause__)


def test_an_error_raised_on_a_worker_process_arrives_with_its_class(local_client: Client) -> None:
    future = local_client.submit(_raise, AssetReadError, "cannot read http://x/B04.tif", pure=False)
    with pytest.raises(AssetReadError, match=r"cannot read http://x/B04\.tif") as info:
        future.result()
    assert info.value.exit_code == errors.ExitCode.DATA
    assert os.getpid() not in local_client.run(os.getpid).values(), "it came from another process"
