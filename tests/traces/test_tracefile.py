"""Trace files: Parquet round trips, streaming by row group, directories, other tools' view."""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heddle.traces import (
    COLUMN_NAMES,
    SCHEMA_VERSION,
    Trace,
    TraceFormatError,
    TraceValidationError,
    TraceWriter,
    concat_traces,
    convert_trace,
    from_tasks,
    is_legacy,
    iter_trace,
    parquet,
    read_trace,
    to_tasks,
    write_trace,
)
from heddle.traces.arrowframe import READ_POOL
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
@given(trace=traces(), name=st.sampled_from(["t.parquet", "t.htr", "t.htr.gz"]))
def test_write_then_read_gives_the_identical_trace(tmp_path_factory, trace: Trace, name: str):
    path = tmp_path_factory.mktemp("rt") / name
    assert write_trace(trace, path) == len(trace)
    back = read_trace(path)
    pd.testing.assert_frame_equal(back.df, trace.df, check_exact=True)
    assert back.meta == trace.meta


@pytest.mark.parametrize("name", ["t.parquet", "t.htr"])
def test_a_read_trace_can_be_edited_in_place(tmp_path: Path, small_trace: Trace, name: str):
    """Columns read without a copy are still the reader's own: writable, shared with nothing."""
    path = tmp_path / name
    write_trace(small_trace, path)
    back = read_trace(path)
    for column in ("arrival_s", "prompt_tokens", "deadline_s", "priority"):
        back.df.loc[0, column] = 3
        assert back.df[column].iloc[0] == 3
    assert read_trace(path).equals(small_trace)


def test_empty_trace_round_trips_with_schema_dtypes(tmp_path: Path):
    empty = Trace.empty({"note": "nothing"})
    write_trace(empty, tmp_path / "e.parquet")
    back = read_trace(tmp_path / "e.parquet")
    assert len(back) == 0 and back.duration_s == 0.0
    assert back.df.dtypes.astype(str).to_dict() == empty.df.dtypes.astype(str).to_dict()
    assert back.meta == {"note": "nothing"}
    assert list(iter_trace(tmp_path / "e.parquet")) == []


def test_streamed_chunks_are_gathered_into_row_groups(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "s.parquet"
    with TraceWriter(path, small_trace.meta, row_group_rows=20) as writer:
        for chunk in small_trace.chunks(7):
            writer.write(chunk)
    assert writer.rows == 50
    assert [g["num_rows"] for g in _row_groups(path)] == [20, 20, 10]
    chunks = list(iter_trace(path, rows=20))
    assert [len(c) for c in chunks] == [20, 20, 10]
    assert read_trace(path).equals(small_trace)
    assert concat_traces(chunks, small_trace.meta).equals(small_trace)


def _row_groups(path: Path) -> list[dict]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).to_dict() for i in range(meta.num_row_groups)]


def test_streaming_holds_one_chunk_and_only_its_categories(tmp_path: Path):
    """Memory while streaming does not grow with the trace: each chunk is at most `rows` rows
    and carries only the category values its rows use, not the whole trace's."""
    n = 5_000
    frame = make_frame(n)
    frame["pipeline_id"] = [f"p{i}" for i in range(n)]  # one workflow per row: 5,000 values
    frame["stage"] = "s"
    frame["depends_on"] = ""
    trace = Trace.from_frame(frame)
    path = tmp_path / "big.parquet"
    with TraceWriter(path, row_group_rows=1_000) as writer:
        writer.write(trace)
    chunks = 0
    for chunk in iter_trace(path, rows=500):
        assert len(chunk) == 500
        assert len(chunk.df["pipeline_id"].cat.categories) == 500
        chunks += 1
    assert chunks == 10
    # the file itself stores per-row-group dictionaries: five groups of 1,000 values
    assert len(_row_groups(path)) == 5


def test_a_pipeline_cut_by_a_chunk_boundary_streams(tmp_path: Path, small_trace: Trace):
    # make_frame puts a 3-stage pipeline in rows 0-2; chunks of 2 rows cut it
    path = tmp_path / "p.parquet"
    write_trace(small_trace, path)
    assert sum(len(c) for c in iter_trace(path, rows=2)) == len(small_trace)


def test_a_directory_of_parquet_files_reads_as_one_trace(tmp_path: Path, small_trace: Trace):
    days = tmp_path / "recorded"
    days.mkdir()
    parts = list(small_trace.chunks(20))
    for name, part in zip(["2026-12-01", "2026-12-02", "2026-12-03"], parts, strict=True):
        write_trace(part, days / f"{name}.parquet")
    (days / "2026-12-04.parquet.partial").write_bytes(b"a recorder still writing")
    (days / "notes.txt").write_text("not a trace")
    assert read_trace(days).equals(small_trace)
    assert concat_traces(iter_trace(days), small_trace.meta).equals(small_trace)
    # what a DuckDB user reads with 'SELECT * FROM "recorded/*.parquet"'
    whole = pd.read_parquet(sorted(days.glob("*.parquet")))
    assert list(whole["task_id"]) == list(small_trace.df["task_id"])


def test_files_deleted_while_read_are_read_as_they_were(tmp_path: Path, small_trace: Trace,
                                                        monkeypatch: pytest.MonkeyPatch):
    """The live recorder deletes a day's parts once it has compacted them. A reader that has
    opened one reads it whole, on both of its threads (the second one reads task ids)."""
    days = tmp_path / "recorded"
    days.mkdir()
    for i, part in enumerate(small_trace.chunks(20)):
        write_trace(part, days / f"2026-12-06-p{i}.parquet")
    read_columns = parquet._read_columns

    def delete_first(pf: pq.ParquetFile, path: Path, names: list[str]) -> dict:
        if threading.current_thread() is threading.main_thread():
            path.unlink()
        return read_columns(pf, path, names)

    monkeypatch.setattr(parquet, "_read_columns", delete_first)
    assert read_trace(days).equals(small_trace)
    assert not any(days.iterdir())


def test_a_directory_of_more_files_than_a_process_may_open(tmp_path: Path, small_trace: Trace):
    """The live recorder leaves ~1,350 files a day; a reader holds one open at a time."""
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, part in enumerate(small_trace.chunks(1)):
        write_trace(part, parts / f"p{i:03d}.parquet")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + len(small_trace) // 2, hard))
    try:
        back = read_trace(parts)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert back.equals(small_trace)


def test_directory_errors_name_the_file(tmp_path: Path, small_trace: Trace):
    days = tmp_path / "days"
    days.mkdir()
    with pytest.raises(TraceFormatError, match="without .parquet files"):
        read_trace(days)
    first, second = small_trace.chunks(25)
    # named so that name order is not time order
    write_trace(first, days / "b.parquet")
    write_trace(second, days / "a.parquet")
    for read in (read_trace, lambda p: list(iter_trace(p))):
        with pytest.raises(TraceValidationError, match="sorted by arrival") as info:
            read(days)
        assert str(days / "b.parquet") in str(info.value)
        assert info.value.column == "arrival_s"
    (days / "a.parquet").unlink()
    write_trace(first, days / "c.parquet")  # the same task ids again, a day later
    with pytest.raises(TraceValidationError, match="unique") as info:
        read_trace(days)
    assert info.value.path == str(days / "c.parquet") and info.value.row == 0


def test_legacy_files_convert_to_parquet(tmp_path: Path, small_trace: Trace):
    old = tmp_path / "old.htr.gz"
    write_trace(small_trace, old)
    assert is_legacy(old)
    rows, new = convert_trace(old)
    assert (rows, new) == (50, tmp_path / "old.parquet")
    assert not is_legacy(new) and new.read_bytes()[:4] == b"PAR1"
    assert read_trace(new).equals(small_trace)
    with pytest.raises(TraceFormatError, match="onto itself"):
        convert_trace(new, new)


def test_failed_write_leaves_no_file(tmp_path: Path, small_trace: Trace):
    def chunks():
        yield small_trace
        raise RuntimeError("producer died")

    for name in ("t.parquet", "t.htr"):
        with pytest.raises(RuntimeError):
            write_trace(chunks(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_trace_is_a_plain_parquet_file_for_other_tools(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.parquet"
    write_trace(small_trace, path)
    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    assert schema.names == list(COLUMN_NAMES)
    assert pa.types.is_dictionary(schema.field("privacy").type)
    assert schema.field("task_id").type == pa.large_string()
    assert schema.field("prompt_tokens").type == pa.int32()
    assert schema.field("owner").metadata[b"doc"].startswith(b"owner id")
    kv = schema.metadata
    assert kv[b"heddle.schema_version"] == str(SCHEMA_VERSION).encode()
    assert json.loads(kv[b"heddle.meta"]) == small_trace.meta
    # a missing deadline is a null, as SQL expects, and NaN again in pandas
    deadline = pq.read_table(path, columns=["deadline_s"]).column(0)
    assert deadline.null_count == int(small_trace.df["deadline_s"].isna().sum()) > 0
    df = pd.read_parquet(path)
    assert isinstance(df["privacy"].dtype, pd.CategoricalDtype)
    assert (df["privacy"] == "personal").sum() == (small_trace.df["privacy"] == "personal").sum()
    assert df["deadline_s"].isna().equals(small_trace.df["deadline_s"].isna())
    # row groups carry min/max of arrival_s, so a query on a time window skips the others
    stats = pf.metadata.row_group(0).column(0).statistics
    assert (stats.min, stats.max) == (small_trace.df["arrival_s"].min(),
                                      small_trace.df["arrival_s"].max())


def test_a_table_from_another_tool_reads_once_it_says_it_is_a_trace(tmp_path: Path):
    """pandas' own writer: object strings, int64 numbers, NaN deadlines, None for "none"."""
    frame = make_frame(30).astype({"privacy": object, "prompt_tokens": "int64"})
    frame.loc[5, "owner"] = None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    path = tmp_path / "mine.parquet"
    pq.write_table(table.replace_schema_metadata({"heddle.schema_version": "1"}), path)
    back = read_trace(path)
    expected = Trace.from_frame(frame.fillna({"owner": ""}))
    assert back.equals(expected)
    assert back.meta == {}


def test_write_trace_refuses_a_name_it_would_not_write(tmp_path: Path, small_trace: Trace):
    with pytest.raises(TraceFormatError, match=r"\*\.parquet"):
        write_trace(small_trace, tmp_path / "t.csv")
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


def test_an_llm_row_names_a_model_or_at_least_a_tier():
    # a workload step with a tier and no model ("any frontier API") is a row too; neither is not
    frame = make_frame(10)
    frame.loc[4, ["kind", "model", "tier"]] = ["llm", "", ""]
    with pytest.raises(TraceValidationError, match="a model id") as info:
        Trace.from_frame(frame)
    assert (info.value.row, info.value.column) == (4, "model")
    frame.loc[4, "tier"] = "frontier"
    task = list(to_tasks(Trace.from_frame(frame)))[4]
    assert task.model is None and task.tier == "frontier"


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


def test_writer_refuses_what_it_cannot_keep(tmp_path: Path, small_trace: Trace):
    extra = small_trace.df.assign(note="x")
    with pytest.raises(TraceValidationError, match="note"):
        write_trace(Trace(extra), tmp_path / "x.parquet")
    halves = list(small_trace.chunks(25))
    with pytest.raises(TraceValidationError, match="arrival order"):
        write_trace(reversed(halves), tmp_path / "y.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_read_leaves_arrows_default_allocator_to_the_rest_of_the_process(tmp_path: Path):
    """A Parquet read decodes into READ_POOL (the C library's allocator), so a process's first
    read does not commit Arrow's default arena in huge pages (docs/traces.md: 384-434 ms
    against ~185 for a million rows), and nothing process-wide is changed."""
    path = tmp_path / "t.parquet"
    write_trace(Trace.from_frame(make_frame(50_000)), path)
    default = pa.default_memory_pool()
    backend = default.backend_name
    default_before, ours_before = default.bytes_allocated(), READ_POOL.bytes_allocated()
    trace = read_trace(path)
    held_by_default = default.bytes_allocated() - default_before
    held_by_ours = READ_POOL.bytes_allocated() - ours_before
    assert held_by_ours > 50_000 * 16  # the numeric columns and codes, at least
    assert held_by_default < held_by_ours / 20
    assert pa.default_memory_pool().backend_name == backend  # not replaced for the process
    assert len(trace) == 50_000
