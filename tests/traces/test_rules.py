"""The schema's rules, checked by vectorized code, against plain-Python statements of them."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.traces import Trace, TraceValidationError, parquet, read_trace, write_trace
from heddle.traces.schema import SLICE_ROWS
from tests.traces.conftest import make_frame

PIPELINES = ["", "p1", "p2", "p10"]
STAGES = ["", "a", "b", "c"]
DEPENDS = ["", "a", "b", "a,b", "c,a", "x", "a,,b", ",", "b,x"]


def first_broken_dependency(pipelines: list[str], stages: list[str],
                            depends: list[str]) -> tuple[int, str] | None:
    """The rule as the docs say it: every name in a row's depends_on is the stage of some
    row of the same pipeline, and a row outside a pipeline ("") depends on nothing."""
    have = {(p, s) for p, s in zip(pipelines, stages, strict=True) if p}
    for row, (pipeline, value) in enumerate(zip(pipelines, depends, strict=True)):
        for name in value.split(",") if value else []:
            if not pipeline or (pipeline, name) not in have:
                return row, name
    return None


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(1, 25))
def test_dependencies_are_refused_exactly_where_the_rule_says(data: st.DataObject, n: int):
    draw = lambda values: data.draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))
    pipelines, stages, depends = draw(PIPELINES), draw(STAGES), draw(DEPENDS)
    frame = make_frame(n).assign(pipeline_id=pipelines, stage=stages, depends_on=depends)
    expected = first_broken_dependency(pipelines, stages, depends)
    if expected is None:
        Trace.from_frame(frame)
        return
    with pytest.raises(TraceValidationError) as info:
        Trace.from_frame(frame)
    row, name = expected
    assert (info.value.row, info.value.column) == (row, "depends_on")
    assert f"depends on stage {name!r}, which pipeline {pipelines[row]!r}" in str(info.value)


def test_a_broken_dependency_past_the_first_slice_names_its_row():
    frame = make_frame(SLICE_ROWS + 40)
    frame.loc[SLICE_ROWS + 7, ["pipeline_id", "stage", "depends_on"]] = ["p0", "late", "nope"]
    with pytest.raises(TraceValidationError, match="'nope'") as info:
        Trace.from_frame(frame)
    assert info.value.row == SLICE_ROWS + 7


BREACHES = {  # one bad value each, in the order the rules report them
    "prompt_tokens": (9, "prompt_tokens", -1),
    "repeated id": (6, "task_id", "t4"),
    "no model": (3, "model", ""),
    "dependency": (1, "depends_on", "nope"),
}


class LateSecondThread(ThreadPoolExecutor):
    """The Parquet reader's second thread, running late: it decodes each file's task ids at
    once (the read waits for that before it closes the file) and starts nothing else until
    the read is over, so the calling thread has to do those tasks itself."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.held: list = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if fn is parquet._task_ids:
            return super().submit(fn, *args, **kwargs)
        self.held.append((fn, args, kwargs))
        late: Future = Future()  # a read that waits for it fails instead of hanging
        late.set_exception(RuntimeError("the read waited for the late second thread"))
        return late

    def __exit__(self, *exc) -> bool | None:
        for fn, args, kwargs in self.held:  # its turn at last: each finds its work done
            super().submit(fn, *args, **kwargs)
        return super().__exit__(*exc)


def test_a_late_second_thread_leaves_its_tasks_to_the_calling_thread(
        tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Whichever thread gets to a task first does it, once: the same trace is read."""
    trace = Trace.from_frame(make_frame(300))
    for i, part in enumerate(trace.chunks(100)):
        write_trace(part, tmp_path / f"{i}.parquet")
    keyed = []
    grouped_keys = parquet.grouped_keys
    monkeypatch.setattr(parquet, "grouped_keys", lambda ids: keyed.append(1) or grouped_keys(ids))
    monkeypatch.setattr(parquet, "ThreadPoolExecutor", LateSecondThread)
    assert read_trace(tmp_path).equals(trace)
    assert len(keyed) == 3  # once per file, although both threads asked


@pytest.mark.parametrize("late", [False, True], ids=["second thread", "late second thread"])
@pytest.mark.parametrize("breaches", [
    ["repeated id", "dependency"], ["prompt_tokens", "repeated id"], ["repeated id", "no model"],
    ["no model", "dependency"], ["repeated id"], ["dependency"], list(BREACHES),
])
def test_every_reader_reports_the_same_first_breach(tmp_path, breaches: list[str], late: bool,
                                                    monkeypatch: pytest.MonkeyPatch):
    """The Parquet reader checks unique ids and dependencies on a second thread (or on the
    calling thread, if it gets there first); what it reports is still the first rule
    broken, as checking the frame in memory and the legacy reader say."""
    if late:
        monkeypatch.setattr(parquet, "ThreadPoolExecutor", LateSecondThread)
    frame = make_frame(12)
    for name in breaches:
        row, column, value = BREACHES[name]
        frame.loc[row, column] = value
    trace = Trace.from_frame(frame, check=False)
    errors = []
    with pytest.raises(TraceValidationError) as info:
        Trace.from_frame(frame)
    errors.append(info.value)
    for name in ("t.parquet", "t.htr"):
        write_trace(trace, tmp_path / name)
        with pytest.raises(TraceValidationError) as info:
            read_trace(tmp_path / name)
        errors.append(info.value)
    row, column, _ = BREACHES[breaches[0]]
    assert {(e.row, e.column, e.reason) for e in errors} == {(row, column, errors[0].reason)}
