"""benchmarks/bench_traces.py splits each read into checking and decoding from that same read
(it once subtracted medians of different reads and printed negative checking times)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType

from benchmarks.bench_traces import CHECKS, CheckClock, Timing
from heddle.traces import Trace, read_trace, write_trace
from tests.traces.conftest import make_frame


class Clocks:
    """Stand-in clocks: CPU time per thread, one wall clock; they move only when told."""

    def __init__(self) -> None:
        self._cpu = threading.local()
        self.wall_s = 0.0

    def cpu(self) -> float:
        return getattr(self._cpu, "s", 0.0)

    def wall(self) -> float:
        return self.wall_s

    def spend(self, seconds: float) -> None:
        """This thread works `seconds` on a core of its own."""
        self._cpu.s = self.cpu() + seconds
        self.wall_s += seconds


def test_a_rule_called_within_another_counts_once_and_another_thread_counts_in_cpu_only():
    clocks = Clocks()
    rules = ModuleType("rules")

    def rule() -> None:
        clocks.spend(2)

    def validated() -> None:  # a rule that calls another: 1 + 2 + 1
        clocks.spend(1)
        rules.rule()
        clocks.spend(1)

    rules.rule, rules.validated = rule, validated
    checks = CheckClock(clocks.cpu, clocks.wall)
    with checks.installed({rules: ("rule", "validated")}):
        clocks.spend(10)  # decoding: not a rule
        rules.validated()
        second = threading.Thread(target=rules.rule)  # the reader's second thread
        second.start()
        second.join()
    assert rules.rule is rule and rules.validated is validated
    assert checks.cpu_s == 4 + 2
    assert checks.caller_wall_s == 4
    checks.reset()
    assert checks.cpu_s == checks.caller_wall_s == 0


def test_each_reader_reaches_the_timed_rules_and_they_are_part_of_the_same_read(tmp_path: Path):
    trace = Trace.from_frame(make_frame(2_000))
    checks = CheckClock()
    for name in ("t.parquet", "t.htr"):
        write_trace(trace, tmp_path / name)
        timing = Timing()
        with checks.installed():
            assert timing.run(lambda p=tmp_path / name: read_trace(p), checks).equals(trace)
        assert 0 < timing.check_cpu_s <= timing.cpu_s, name
        assert 0 < timing.check_wall_s <= timing.wall_s, name
    for module, names in CHECKS.items():  # the readers' own functions are back
        assert all(not hasattr(getattr(module, n), "__wrapped__") for n in names)
