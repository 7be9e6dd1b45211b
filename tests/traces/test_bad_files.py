"""Bad Parquet input is a one-line error naming the file: cut short, corrupt, not a trace,
another schema version, missing or mistyped columns, values the schema refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.traces import (
    Trace,
    TraceError,
    TraceFormatError,
    TraceValidationError,
    iter_trace,
    read_trace,
    write_trace,
)

READERS = {"read_trace": read_trace, "iter_trace": lambda p: list(iter_trace(p))}


def _trace_table(small_trace: Trace, tmp_path: Path) -> pa.Table:
    write_trace(small_trace, tmp_path / "good.parquet")
    return pq.read_table(tmp_path / "good.parquet")


def _raises(path: Path, error: type[TraceError], match: str) -> TraceError:
    """Both readers refuse `path` with `error`, in one line that names the file."""
    for name, read in READERS.items():
        with pytest.raises(error, match=match) as info:
            read(path)
        message = str(info.value)
        assert message.startswith(str(path)), (name, message)
        assert "\n" not in message, (name, message)
    return info.value


def test_a_cut_short_file_is_refused(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.parquet"
    write_trace(small_trace, path)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 8, len(data) // 2, 4):
        path.write_bytes(data[:cut])
        _raises(path, TraceFormatError, "cut short or corrupt")


def test_corrupt_bytes_are_an_error_never_a_crash_or_a_silent_change(
        tmp_path: Path, small_trace: Trace):
    """Page checksums catch damage inside the data; damage to the footer fails to parse."""
    path = tmp_path / "t.parquet"
    write_trace(small_trace, path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(40):
        broken = np.frombuffer(data, dtype=np.uint8).copy()
        at = rng.integers(4, len(broken) - 8, 3)  # keep the magic at both ends
        broken[at] = broken[at] ^ rng.integers(1, 256, 3).astype(np.uint8)
        path.write_bytes(broken.tobytes())
        try:
            back = read_trace(path)
        except (TraceFormatError, TraceValidationError) as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)
            refused += 1
            continue
        # bytes that no reader looks at (e.g. statistics, padding) may change harmlessly
        assert back.equals(small_trace)
    assert refused >= 30


def test_a_parquet_file_that_is_not_a_trace(tmp_path: Path):
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"region": ["north"], "revenue": [1.0]}), path)
    _raises(path, TraceFormatError, "not a heddle trace")


def test_another_schema_version(tmp_path: Path, small_trace: Trace):
    table = _trace_table(small_trace, tmp_path)
    path = tmp_path / "future.parquet"
    meta = dict(table.schema.metadata) | {b"heddle.schema_version": b"9"}
    pq.write_table(table.replace_schema_metadata(meta), path)
    _raises(path, TraceFormatError, "schema version '9' is not supported")


def test_unreadable_trace_meta(tmp_path: Path, small_trace: Trace):
    table = _trace_table(small_trace, tmp_path)
    path = tmp_path / "meta.parquet"
    meta = dict(table.schema.metadata) | {b"heddle.meta": b'{"source": 3}'}
    pq.write_table(table.replace_schema_metadata(meta), path)
    _raises(path, TraceFormatError, "heddle.meta")


def test_missing_columns_are_named(tmp_path: Path, small_trace: Trace):
    table = _trace_table(small_trace, tmp_path)
    path = tmp_path / "short.parquet"
    pq.write_table(table.drop_columns(["privacy", "owner"]), path)
    _raises(path, TraceFormatError, "missing column.*privacy, owner")


def test_a_column_of_the_wrong_type_is_named(tmp_path: Path, small_trace: Trace):
    table = _trace_table(small_trace, tmp_path)
    path = tmp_path / "typed.parquet"
    i = table.schema.get_field_index("privacy")
    pq.write_table(table.set_column(i, "privacy", pa.array(np.arange(len(table)))), path)
    _raises(path, TraceFormatError, "column 'privacy' holds int64, expected strings")


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


@pytest.mark.parametrize(("column", "values", "row", "match"), [
    ("privacy", lambda n: ["public"] * 7 + ["secret"] + ["public"] * (n - 8), 7, "'secret'"),
    ("prompt_tokens", lambda n: pa.array([1] * 3 + [2**40] + [1] * (n - 4)), None, "int32"),
    ("prompt_tokens", lambda n: pa.array([1] * 4 + [None] + [1] * (n - 5), pa.int32()), 4,
     "missing value"),
    ("task_id", lambda n: [f"t{i}" for i in range(n - 1)] + ["t3"], 49, "unique"),
    ("arrival_s", lambda n: pa.array(np.r_[np.arange(n - 1.0), [-1.0]]), 49, ">= 0"),
])
def test_values_the_schema_refuses_name_the_row_and_column(
        tmp_path: Path, small_trace: Trace, column: str, values, row: int | None, match: str):
    table = _trace_table(small_trace, tmp_path)
    path = tmp_path / "bad.parquet"
    new = values(len(table))
    new = new if isinstance(new, pa.Array) else pa.array(new)
    pq.write_table(_with_column(table, column, new), path)
    with pytest.raises(TraceValidationError, match=match) as info:
        read_trace(path)
    assert info.value.path == str(path) and info.value.column == column
    assert info.value.row == row
    assert "\n" not in str(info.value)


def test_the_cli_shows_a_bad_file_in_one_line(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.parquet"
    write_trace(small_trace, path)
    path.write_bytes(path.read_bytes()[:-100])
    runner = CliRunner()
    for command in ("stats", "head"):
        result = runner.invoke(app, ["trace", command, str(path)], catch_exceptions=False)
        assert result.exit_code == 2  # input rejected (docs/getting-started.md, exit codes)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines[0].startswith("heddle trace") and str(path.name) in result.output
    result = runner.invoke(app, ["trace", "convert", str(tmp_path / "nope.htr.gz")],
                           catch_exceptions=False)
    assert result.exit_code == 2 and "nope.htr.gz" in result.output

