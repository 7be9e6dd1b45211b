"""The trace file format: round trips, streaming, compression, and refusing bad files."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heddle.traces import (
    Trace,
    TraceFormatError,
    TraceValidationError,
    concat_traces,
    from_tasks,
    iter_trace,
    read_trace,
    to_tasks,
    write_trace,
)
from tests.traces.conftest import make_frame

ANY_TEXT = st.text(max_size=12)  # commas, quotes, newlines, unicode, surrogates, NUL


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    n = draw(st.integers(0, 25))
    col = lambda strat: draw(st.lists(strat, min_size=n, max_size=n))
    arrival = sorted(col(st.floats(0, 1e7, allow_nan=False)))
    kinds = col(st.sampled_from(["llm", "processor"]))
    models = col(st.text(min_size=1, max_size=12))
    frame = pd.DataFrame({
        "arrival_s": np.array(arrival, dtype="float64"),
        "kind": kinds,
        "model": [m if k == "llm" else "" for m, k in zip(models, kinds, strict=True)],
        "quant": col(ANY_TEXT),
        "prompt_tokens": np.array(col(st.integers(0, 2**31 - 1)), dtype="int64"),
        "output_tokens": np.array(col(st.integers(0, 2**31 - 1)), dtype="int64"),
        "cpu_seconds": np.array(col(st.floats(0, 1e6, width=32)), dtype="float32"),
        "memory_gb": np.array(col(st.floats(0, 1e3, width=32)), dtype="float32"),
        "privacy": col(st.sampled_from(["public", "sensitive", "personal"])),
        "owner": col(ANY_TEXT),
        "deadline_s": np.array(col(st.one_of(st.just(math.nan), st.floats(1e-3, 1e6))),
                               dtype="float64"),
        "tier": col(st.sampled_from(["", "local", "standard", "frontier"])),
        "account": col(ANY_TEXT),
        "priority": np.array(col(st.integers(-128, 127)), dtype="int64"),
        "pipeline_id": col(ANY_TEXT),
        "stage": col(ANY_TEXT),
        "depends_on": [""] * n,
        "task_id": draw(st.lists(st.text(min_size=1, max_size=16), min_size=n, max_size=n,
                                 unique=True)),
    })
    meta = draw(st.dictionaries(st.text(max_size=8), ANY_TEXT, max_size=3))
    return Trace.from_frame(frame, meta)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=traces(), gz=st.booleans())
def test_write_then_read_gives_the_identical_trace(tmp_path_factory, trace: Trace, gz: bool):
    path = tmp_path_factory.mktemp("rt") / ("t.htr.gz" if gz else "t.htr")
    assert write_trace(trace, path) == len(trace)
    back = read_trace(path)
    pd.testing.assert_frame_equal(back.df, trace.df, check_exact=True)
    assert back.meta == trace.meta


def test_empty_trace_round_trips_with_schema_dtypes(tmp_path: Path):
    empty = Trace.empty({"note": "nothing"})
    write_trace(empty, tmp_path / "e.htr")
    back = read_trace(tmp_path / "e.htr")
    assert len(back) == 0 and back.duration_s == 0.0
    assert back.df.dtypes.astype(str).to_dict() == empty.df.dtypes.astype(str).to_dict()
    assert back.meta == {"note": "nothing"}


def test_streamed_chunks_read_back_as_one_trace(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "s.htr.gz"
    write_trace(small_trace.chunks(7), path, meta=small_trace.meta)
    chunks = list(iter_trace(path))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    assert read_trace(path).equals(small_trace)
    assert concat_traces(chunks, small_trace.meta).equals(small_trace)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path, small_trace: Trace):
    write_trace(small_trace, tmp_path / "a.htr.gz")
    renamed = tmp_path / "no-suffix"
    renamed.write_bytes((tmp_path / "a.htr.gz").read_bytes())
    assert renamed.read_bytes()[:2] == b"\x1f\x8b"
    assert read_trace(renamed).equals(small_trace)


def test_a_cut_short_file_is_refused_not_half_read(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.htr"
    write_trace(small_trace, path)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 9, len(data) // 2):
        path.write_bytes(data[:cut])
        with pytest.raises(TraceFormatError, match="cut short"):
            read_trace(path)


def test_unknown_version_and_foreign_files_are_refused(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.htr"
    write_trace(small_trace, path)
    path.write_bytes(path.read_bytes().replace(b"HEDDLE-TRACE 1", b"HEDDLE-TRACE 9", 1))
    with pytest.raises(TraceFormatError, match="version 9"):
        read_trace(path)
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(TraceFormatError, match="not a heddle trace"):
        read_trace(csv)
    gz = tmp_path / "x.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    with pytest.raises(TraceFormatError, match="not a heddle trace"):
        read_trace(gz)


def test_failed_write_leaves_no_file(tmp_path: Path, small_trace: Trace):
    def chunks():
        yield small_trace
        raise RuntimeError("producer died")

    with pytest.raises(RuntimeError):
        write_trace(chunks(), tmp_path / "t.htr")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("privacy", "secret", "not one of"),
    ("prompt_tokens", -1, "tokens >= 0"),
    ("prompt_tokens", "many", "integer"),
    ("deadline_s", 0.0, "deadline > 0"),
    ("task_id", "t1", "unique"),
    ("depends_on", "nope", "does not have"),
])
def test_bad_values_name_row_and_column(column: str, value: object, expected: str):
    frame = make_frame(10)
    frame[column] = frame[column].astype(object)
    frame.loc[4, column] = value
    if column == "depends_on":
        frame.loc[4, "pipeline_id"] = "p0"
    with pytest.raises(TraceValidationError, match=expected) as info:
        Trace.from_frame(frame)
    assert info.value.column == column
    assert info.value.row == 4
    assert f"row 4, column '{column}'" in str(info.value)


def test_to_tasks_makes_deadlines_absolute(small_trace: Trace):
    df = small_trace.df
    tasks = list(to_tasks(small_trace))
    assert [t.id for t in tasks] == list(df["task_id"])
    for task, (_, row) in zip(tasks, df.iterrows(), strict=True):
        if np.isnan(row["deadline_s"]):
            assert task.deadline_s is None
        else:
            assert task.deadline_s == pytest.approx(row["arrival_s"] + row["deadline_s"])
        assert task.privacy.value == row["privacy"]
    stages = {t.stage: t for t in tasks if t.pipeline_id == "p0"}
    assert stages["chunk"].kind.value == "processor" and stages["chunk"].model is None


def test_memory_per_row_is_small(small_trace: Trace):
    big = Trace.from_frame(make_frame(20_000))
    assert big.df.memory_usage(deep=True).sum() / len(big) < 200


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=traces())
def test_tasks_recorded_back_into_a_trace_match_the_original(trace: Trace):
    deps = dict(zip(trace.df["task_id"], trace.df["depends_on"].astype(str), strict=True))
    back = from_tasks(to_tasks(trace), deps, trace.meta)
    # relative -> absolute -> relative deadlines may differ in the last bits
    pd.testing.assert_frame_equal(back.df.drop(columns="deadline_s"),
                                  trace.df.drop(columns="deadline_s"), check_exact=True)
    np.testing.assert_allclose(back.df["deadline_s"], trace.df["deadline_s"], rtol=1e-9,
                               atol=1e-6)


def test_writer_refuses_what_it_cannot_keep(tmp_path: Path, small_trace: Trace):
    extra = small_trace.df.assign(note="x")
    with pytest.raises(TraceValidationError, match="note"):
        write_trace(Trace(extra), tmp_path / "x.htr")
    halves = list(small_trace.chunks(25))
    with pytest.raises(TraceValidationError, match="arrival order"):
        write_trace(reversed(halves), tmp_path / "y.htr")
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=traces())
def test_a_trace_exported_as_csv_imports_back_unchanged(tmp_path_factory, trace: Trace):
    from heddle.traces.importers import CsvMapping, import_csv

    df = trace.df
    texts = df.select_dtypes(exclude="number").astype(str)
    # CSV cannot carry lone surrogates, and the importer strips spaces around enum values
    if texts.map(lambda v: any(0xD800 <= ord(c) <= 0xDFFF for c in v)).any().any():
        return
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    # the csv module quotes fields holding \r or \n (pandas' writer leaves a bare \r alone)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(df.columns)
        for record in df.astype(object).itertuples(index=False):
            writer.writerow("" if isinstance(v, float) and math.isnan(v) else repr(float(v))
                            if isinstance(v, float) else v for v in record)
    mapping = CsvMapping(columns={c: c for c in df.columns})
    back = import_csv(path, mapping).trace
    shift = df["arrival_s"].min() if len(df) else 0.0
    expected = df.assign(arrival_s=df["arrival_s"] - shift)
    pd.testing.assert_frame_equal(back.df, expected, check_exact=True)


def test_corrupted_bytes_give_a_format_error_never_a_crash(tmp_path: Path, small_trace: Trace):
    for name in ("t.htr", "t.htr.gz"):
        path = tmp_path / name
        write_trace(small_trace, path)
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(0)
        for _ in range(20):
            broken = np.frombuffer(bytes(data), dtype=np.uint8).copy()
            # keep the first line so the damage lands past the magic
            broken[rng.integers(20, len(broken), 4)] = rng.integers(0, 256, 4)
            path.write_bytes(broken.tobytes())
            try:
                back = read_trace(path)
            except (TraceFormatError, TraceValidationError):
                continue
            # damage inside a number can survive: then the file still reads as a whole trace
            assert len(back) == len(small_trace)
