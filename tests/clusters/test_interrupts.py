"""One Ctrl-C always interrupts, even when it lands where Python swallows exceptions."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cubehub.clusters.interrupts import handle_interrupts


class _Swallower:
    """Its __del__ runs when the signal arrives: an exception there is only printed."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, inside __del__


def test_interrupt_inside_del_is_delivered_again() -> None:
    with pytest.raises(KeyboardInterrupt), handle_interrupts():
        _Swallower()  # deleted at once
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        pytest.fail("the interrupt was swallowed")


def test_sigterm_raises_keyboard_interrupt_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), handle_interrupts(signal.SIGTERM):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before
