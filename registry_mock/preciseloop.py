"""An asyncio event loop whose timers fire within tens of microseconds, for the emulated link.

The default loop waits in `epoll_wait`, whose timeout is whole milliseconds (Python rounds up), so a timer
fires up to 1 ms late; and a CPU that has idled for tens of milliseconds takes another 0.1-0.25 ms to
wake (measured on this VM: `time.sleep(0.1)` returns ~0.15-0.24 ms late, `time.sleep(0.001)` ~0.03 ms).
(Worse: `epoll.poll(0.019)` converts seconds to ns and then to ms rounding up each time, and waits 20 ms.)
`PreciseEpollSelector` waits with `select()` on the epoll descriptor itself (microsecond timeouts), in two
steps: until `WARM_MARGIN_S` before the timeout (absorbing the slow wake-up from deep idle), then the rest
from an already-awake CPU. The thread running the loop gets a timer slack of 1 us (Linux default: 50 us).
"""

from __future__ import annotations

import asyncio
import ctypes
import select
import selectors
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# the last stretch of a wait is done by select() from an already-awake CPU; short, because the wake
# from that stretch costs more the longer it is (29 us after 0.1 ms idle, 149 us after 1 ms, measured
# here; see emulator/rawhttp.py), and long enough to absorb the first stage's late wake-up
WARM_MARGIN_S = 0.0003
_PR_SET_TIMERSLACK = 29


class PreciseEpollSelector(selectors.EpollSelector):
    _slack_set_for: int | None = None  # the thread whose timer slack was lowered

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._slack_set_for != threading.get_ident():
            self._slack_set_for = threading.get_ident()
            set_timer_slack()
        if timeout is None or timeout <= 0:
            return super().select(timeout)
        deadline = time.monotonic() + timeout
        epfd = [self.fileno()]  # readable when any registered descriptor has an event
        if timeout > WARM_MARGIN_S and select.select(epfd, [], [], timeout - WARM_MARGIN_S)[0]:
            return super().select(0)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            select.select(epfd, [], [], remaining)
        return super().select(0)


def set_timer_slack(ns: int = 1000) -> bool:
    """Make this thread's timed waits end within `ns` of their deadline (Linux; False elsewhere)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop with precise timers (on whichever thread runs it)."""
    return asyncio.SelectorEventLoop(PreciseEpollSelector())


def is_precise(loop: asyncio.AbstractEventLoop) -> bool:
    return isinstance(getattr(loop, "_selector", None), PreciseEpollSelector)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a precise loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
