"""Ctrl-C and SIGTERM that always stop a command cleanly.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when a signal
arrives. If that is inside a garbage-collector callback or a ``__del__`` method (distributed
runs a GC callback in every process with a scheduler), the exception is printed and
*ignored*, and the command carries on as if nothing had happened. :func:`handle_interrupts`
installs a handler that notices such places and delivers the interrupt again a moment later,
once the main thread is back in ordinary code, so one Ctrl-C is always enough.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Functions in which an exception is swallowed by the interpreter.
_SWALLOWING = {"__del__", "_gc_callback"}
_RETRY_S = 0.05


def _swallowed_here(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name in _SWALLOWING:
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    if _swallowed_here(frame):
        threading.Timer(_RETRY_S, _thread.interrupt_main, args=(signum,)).start()
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def handle_interrupts(*signums: signal.Signals) -> Iterator[None]:
    """Within the block, SIGINT (and the given signals, e.g. SIGTERM) raise KeyboardInterrupt reliably."""
    wanted = {signal.SIGINT, *signums}
    previous = {s: signal.signal(s, _handler) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
