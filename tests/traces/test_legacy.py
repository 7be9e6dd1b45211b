"""The legacy `.htr` format still reads (and converts) for this release, and refuses bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from heddle.traces import (
    Trace,
    TraceFormatError,
    TraceValidationError,
    iter_trace,
    read_trace,
    write_trace,
)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path, small_trace: Trace):
    write_trace(small_trace, tmp_path / "a.htr.gz")
    renamed = tmp_path / "no-suffix"
    renamed.write_bytes((tmp_path / "a.htr.gz").read_bytes())
    assert renamed.read_bytes()[:2] == b"\x1f\x8b"
    assert read_trace(renamed).equals(small_trace)


def test_legacy_chunks_stream(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "s.htr.gz"
    write_trace(small_trace.chunks(7), path, meta=small_trace.meta)
    assert [len(c) for c in iter_trace(path)] == [7] * 7 + [1]


def test_a_cut_short_file_is_refused_not_half_read(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.htr"
    write_trace(small_trace, path)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 9, len(data) // 2, data.index(b"\n") + 40):
        path.write_bytes(data[:cut])
        with pytest.raises(TraceFormatError, match="cut short") as info:
            read_trace(path)
        # what is wrong in words, not pydantic's report (class names, links to its docs)
        assert "pydantic" not in str(info.value) and "_FileHeader" not in str(info.value)


def test_unknown_version_and_foreign_files_are_refused(tmp_path: Path, small_trace: Trace):
    path = tmp_path / "t.htr"
    write_trace(small_trace, path)
    path.write_bytes(path.read_bytes().replace(b"HEDDLE-TRACE 1", b"HEDDLE-TRACE 9", 1))
    with pytest.raises(TraceFormatError, match="version 9"):
        read_trace(path)
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(TraceFormatError, match="not a heddle trace") as info:
        read_trace(csv)
    assert str(csv) in str(info.value) and "\n" not in str(info.value)
    gz = tmp_path / "x.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    with pytest.raises(TraceFormatError, match="not a heddle trace"):
        read_trace(gz)


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
