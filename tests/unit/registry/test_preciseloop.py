"""The precise event loop: same semantics as asyncio's default loop (events wake it at once, timers never
fire early), only finer timer resolution; and the link's `sleep_until` uses it when it is there."""

from __future__ import annotations

import asyncio
import ctypes
import selectors
import socket
import threading
import time

from registry_mock import preciseloop
from registry_mock.shaping import sleep_until


def test_selector_returns_ready_descriptors_without_waiting_out_the_timeout() -> None:
    sel = preciseloop.PreciseEpollSelector()
    a, b = socket.socketpair()
    try:
        key = sel.register(a, selectors.EVENT_READ)
        assert sel.select(0.005) == []
        b.send(b"x")
        assert sel.select(3600) == [(key, selectors.EVENT_READ)]
    finally:
        sel.close()
        a.close()
        b.close()


def test_selector_never_returns_before_its_timeout() -> None:
    sel = preciseloop.PreciseEpollSelector()
    try:
        for timeout in (0.0002, 0.0013, 0.004):
            t0 = time.monotonic()
            assert sel.select(timeout) == []
            assert time.monotonic() - t0 >= timeout
    finally:
        sel.close()


def test_run_uses_a_precise_loop_and_timers_fire_in_order() -> None:
    async def main() -> tuple[bool, list[int], float]:
        loop = asyncio.get_running_loop()
        fired: list[int] = []
        for i, delay in enumerate((0.003, 0.0005, 0.0015)):
            loop.call_later(delay, fired.append, i)
        deadline = loop.time() + 0.004
        await sleep_until(deadline)
        return preciseloop.is_precise(loop), fired, loop.time() - deadline

    precise, fired, after = preciseloop.run(main())
    assert precise
    assert fired == [1, 2, 0]
    assert after >= 0


def test_default_loop_is_not_taken_for_precise() -> None:
    async def main() -> bool:
        return preciseloop.is_precise(asyncio.get_running_loop())

    assert asyncio.run(main()) is False


def test_the_loop_thread_gets_a_1us_timer_slack() -> None:
    def slack_ns() -> int:
        return int(ctypes.CDLL(None).prctl(30, 0, 0, 0, 0))  # PR_GET_TIMERSLACK

    result: list[int] = []

    def on_thread() -> None:
        async def main() -> None:
            await asyncio.sleep(0.001)  # the selector lowers the slack of the thread it runs on
            result.append(slack_ns())

        preciseloop.run(main())

    t = threading.Thread(target=on_thread)
    t.start()
    t.join()
    assert result == [1000]
