"""Trace replay pays think time against a running account: timer overshoot is not charged per op."""

from __future__ import annotations

import pytest

from emulator.replay import ThinkClock, replay
from emulator.view import Stat
from startup.trace import Op, Trace, TraceOp


class _View:
    def stat(self, path: str) -> Stat:
        raise FileNotFoundError(2, "no such file", path)


def test_overshooting_sleeps_are_credited_to_later_thinks(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    now = [0.0]

    def sleep(s: float) -> None:  # a timer that always wakes 1 ms late
        slept.append(s)
        now[0] += s + 0.001

    ops = tuple(TraceOp(op=Op.STAT, path="x", think_s=0.0002) for _ in range(500))  # 0.1 s of think
    import emulator.replay as mod

    monkeypatch.setattr(mod.time, "perf_counter", lambda: now[0])
    result = replay(_View(), Trace.of(ops), sleep=sleep)
    assert result.think_s == pytest.approx(0.1)
    # one sleep per op would have taken 500 x 1.2 ms = 0.6 s; the account keeps it within a wake-up
    assert now[0] == pytest.approx(0.1, abs=0.0031)
    assert len(slept) < 100


def test_think_clock_owes_small_thinks_and_carries_credit() -> None:
    c = ThinkClock(min_sleep_s=0.002)
    assert c.owe(0.001) == 0.0
    assert c.owe(0.0015) == pytest.approx(0.0025)
    c.slept(0.004)  # overshot by 1.5 ms
    assert c.owe(0.001) == 0.0 and c.owed_s == pytest.approx(-0.0005)
