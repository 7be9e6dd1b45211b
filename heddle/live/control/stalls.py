"""Where a live process's event loop stops answering: a debug mode for latency work.

With ``HEDDLE_LOOP_STATS=<file>`` in its environment, a control plane (or agent) times every
callback its asyncio loop runs and every collection of the cyclic garbage collector, and
writes them to that file (JSON) when it stops: each callback or collection that held the
loop longer than ``HEDDLE_LOOP_STATS_MS`` (default 5 ms) with its wall-clock instant, what
ran (the coroutine or callback), and, for the long ones, the stack a sampling thread saw
while it ran. A message that waits behind such a callback waits at least that long, so the
list is the tail latency this process adds by itself, apart from the machine's other load
(which shows as time in no callback at all). Each stall also says how much of it was this
thread's own CPU time: a stall with little CPU was the machine's (the process was not
scheduled), one with its full length in CPU is the code's. The control plane also notes when
each submission reached each stage (``stamp``), for the benchmark's breakdown of
submit->start. Off, nothing is patched and nothing is timed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENV_FILE", "ENV_THRESHOLD_MS", "LoopStats", "from_env"]

ENV_FILE = "HEDDLE_LOOP_STATS"
ENV_THRESHOLD_MS = "HEDDLE_LOOP_STATS_MS"
DEFAULT_THRESHOLD_MS = 5.0
SAMPLE_EVERY_S = 0.005
"""How often the sampling thread looks at the loop's thread (each look takes the GIL: more
often, and the measuring would slow the loop it measures)."""
KEEP_STALLS = 20_000
"""Most stalls kept (a run that stalls more than this is not the tail any more)."""


def _name(handle: asyncio.Handle) -> str:
    callback = handle._callback  # what the loop runs, read only for its name
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return getattr(coro, "__qualname__", repr(coro))
    return getattr(callback, "__qualname__", repr(callback))


@dataclass(slots=True)
class LoopStats:
    """Installs the timing (``install()``) and writes what it saw (``write()``)."""

    path: Path
    threshold_s: float = DEFAULT_THRESHOLD_MS / 1000
    stalls: list[dict[str, Any]] = field(default_factory=list)
    stamps: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> stage -> Unix s
    callbacks: int = 0
    busy_s: float = 0.0
    gc_pauses: Counter[int] = field(default_factory=Counter)  # generation -> collections
    gc_s: Counter[int] = field(default_factory=Counter)  # generation -> seconds
    gc_cpu_s: Counter[int] = field(default_factory=Counter)  # generation -> CPU seconds
    gc_worst_cpu_s: Counter[int] = field(default_factory=Counter)  # generation -> longest (CPU)
    _running_since: float = 0.0  # perf_counter when the current callback began, 0 if none
    _samples: Counter[str] = field(default_factory=Counter)  # the sampling thread's, under _lock
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gc_began: float = 0.0
    _gc_cpu_began: float = 0.0
    _main: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _original: Any = None  # asyncio's own Handle._run, put back by uninstall()

    def install(self) -> LoopStats:
        stats = self
        original = self._original = asyncio.events.Handle._run
        perf, cpu = time.perf_counter, time.thread_time

        def timed_run(handle: asyncio.Handle) -> None:
            began = stats._running_since = perf()
            cpu_began = cpu()
            try:
                original(handle)
            finally:
                took = perf() - began
                stats._running_since = 0.0
                stats.callbacks += 1
                stats.busy_s += took
                if took >= stats.threshold_s:
                    stats._stalled(took, cpu() - cpu_began, _name(handle))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        self._main = threading.get_ident()
        threading.Thread(target=self._sample, name="loop-stats", daemon=True).start()
        return self

    def stamp(self, key: str, stage: str, at: float | None = None) -> None:
        """``key`` (a job or task id) reached ``stage`` now (or ``at``); the first time counts."""
        self.stamps.setdefault(key, {}).setdefault(stage, time.time() if at is None else at)

    def _stalled(self, took: float, cpu_s: float, what: str) -> None:
        if len(self.stalls) >= KEEP_STALLS:
            return
        # taken from the sampling thread under the lock, then read: a stack it added while the
        # loop's thread read the Counter raised "dictionary changed size during iteration" out
        # of the loop, which ends the process (tests/live/test_loop_stats.py; a fit, not
        # proven, for the two benchmark runs of 2026-12-07 whose gateway ended mid-stream)
        with self._lock:
            samples, self._samples = self._samples, Counter()
        stack = samples.most_common(1)
        self.stalls.append({"at": time.time() - took, "ms": round(took * 1000, 2), "cpu_ms": round(cpu_s * 1000, 2),
                            "what": what, "stack": stack[0][0] if stack else ""})

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began, self._gc_cpu_began = time.perf_counter(), time.thread_time()
            return
        took = time.perf_counter() - self._gc_began
        cpu_s = time.thread_time() - self._gc_cpu_began
        generation = info["generation"]
        self.gc_pauses[generation] += 1
        self.gc_s[generation] += took
        self.gc_cpu_s[generation] += cpu_s
        self.gc_worst_cpu_s[generation] = max(self.gc_worst_cpu_s[generation], cpu_s)
        if took >= self.threshold_s and len(self.stalls) < KEEP_STALLS:
            self.stalls.append({"at": time.time() - took, "ms": round(took * 1000, 2),
                                "cpu_ms": round(cpu_s * 1000, 2), "what": f"gc generation {generation} ({info['collected']} collected)",
                                "stack": ""})

    def _sample(self) -> None:
        """While a callback has run longer than the threshold, note where the loop's thread is
        (the deepest few frames): the most frequent place is the stall's stack."""
        while not self._stop.wait(SAMPLE_EVERY_S):
            since = self._running_since
            if not since or time.perf_counter() - since < self.threshold_s:
                continue
            frame = sys._current_frames().get(self._main)  # a sampling profiler reads the frame
            if frame is not None:
                summary = traceback.extract_stack(frame)[-6:]
                self.note(" <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                      for f in reversed(summary)))

    def note(self, stack: str) -> None:
        """The sampling thread saw the loop's thread at ``stack``."""
        with self._lock:
            self._samples[stack] += 1

    def uninstall(self) -> None:
        """Stop timing (the process goes on untimed)."""
        self._stop.set()
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
            self._original = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def write(self) -> None:
        """Stop timing and write what was seen to ``path``."""
        self.uninstall()
        self.path.write_text(json.dumps({
            "pid": os.getpid(), "threshold_ms": self.threshold_s * 1000, "callbacks": self.callbacks,
            "busy_s": round(self.busy_s, 3), "gc_tracked": len(gc.get_objects()),
            "gc_frozen": gc.get_freeze_count(),
            "gc": {str(g): {"collections": n, "seconds": round(self.gc_s[g], 4), "cpu_s": round(self.gc_cpu_s[g], 4),
                            "worst_cpu_s": round(self.gc_worst_cpu_s[g], 4)} for g, n in self.gc_pauses.items()},
            "stalls": self.stalls, "stamps": self.stamps,
        }))


def from_env(role: str) -> LoopStats | None:
    """The stats asked for by the environment (installed), or None. ``role`` is put in the
    file name's place of ``{role}`` so several processes can share one setting."""
    path = os.environ.get(ENV_FILE)
    if not path:
        return None
    threshold_ms = float(os.environ.get(ENV_THRESHOLD_MS) or DEFAULT_THRESHOLD_MS)
    return LoopStats(Path(path.replace("{role}", role)), threshold_ms / 1000).install()
