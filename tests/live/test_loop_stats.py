"""The loop-stall debug mode (HEDDLE_LOOP_STATS): what held the event loop, with its CPU
time and where it was, GC pauses, and the stage instants a process noted."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time

from heddle.live.control import stalls

HOLD_CPU_S = 0.03
STALLS = 100_000


def hold_the_loop(stats: stalls.LoopStats | None = None) -> None:
    """A callback that computes for HOLD_CPU_S of its thread's CPU time, and on until the
    sampling thread has seen it (it needs the GIL, which other threads of a long test
    process compete for), at most 10 s."""
    began, wall = time.thread_time(), time.monotonic()
    while time.thread_time() - began < HOLD_CPU_S or (
            stats is not None and not stats._samples and time.monotonic() - wall < 10.0):
        sum(range(1000))


async def quick() -> None:
    await asyncio.sleep(0)


def test_a_callback_that_holds_the_loop_is_reported_with_its_cpu_time_and_stack(tmp_path, monkeypatch):
    monkeypatch.setenv(stalls.ENV_FILE, str(tmp_path / "{role}.json"))
    monkeypatch.setenv(stalls.ENV_THRESHOLD_MS, "10")
    stats = stalls.from_env("control")
    try:
        async def run() -> None:
            asyncio.get_running_loop().call_soon(hold_the_loop, stats)
            await quick()
            stats.stamp("job-1", "received", 5.0)
            stats.stamp("job-1", "received")  # the first instant counts
            gc.collect()
            await asyncio.sleep(0.01)

        asyncio.run(run())
    finally:
        stats.write()
    written = json.loads((tmp_path / "control.json").read_text())
    held = [s for s in written["stalls"] if s["what"] == "hold_the_loop"]
    assert len(held) == 1 and held[0]["cpu_ms"] >= HOLD_CPU_S * 1000 and held[0]["ms"] >= held[0]["cpu_ms"] * 0.99
    assert "hold_the_loop" in held[0]["stack"]  # the sampling thread saw where it was
    assert not [s for s in written["stalls"] if s["what"] == "quick"]  # short callbacks are only counted
    assert written["callbacks"] >= 3 and written["stamps"] == {"job-1": {"received": 5.0}}
    assert written["gc"]["2"]["collections"] >= 1


def test_off_without_the_variable_and_asyncio_is_left_alone_after_writing(tmp_path, monkeypatch):
    monkeypatch.delenv(stalls.ENV_FILE, raising=False)
    assert stalls.from_env("control") is None
    original = asyncio.events.Handle._run
    stats = stalls.LoopStats(tmp_path / "x.json").install()
    assert asyncio.events.Handle._run is not original
    stats.write()
    assert asyncio.events.Handle._run is original and stats._on_gc not in gc.callbacks


def test_stacks_noted_while_the_loop_records_a_stall_never_break_the_loop(tmp_path):
    # The sampling thread noting a stack while the loop's thread takes the ones noted: it read
    # them as the other thread added one, and "dictionary changed size during iteration" rose
    # out of the loop and ended the process (a gateway cut every stream mid-body, twice in
    # benchmarks under load). Here the threads switch as often as Python lets them, over
    # STALLS stalls (the old code failed within 650-50,000 of them).
    stats = stalls.LoopStats(tmp_path / "x.json")
    stop = threading.Event()

    def sampling() -> None:
        n = 0
        while not stop.is_set():
            stats.note(f"stack {n}")
            n += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=sampling)
    thread.start()
    seen = 0
    try:
        for _ in range(STALLS):
            stats._stalled(0.01, 0.0, "held")  # as the loop's thread does after a long callback
            seen += stats.stalls.pop()["stack"].startswith("stack ")
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert seen  # stacks were noted as it went
