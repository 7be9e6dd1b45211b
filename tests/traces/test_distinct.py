"""Task-id uniqueness by integer keys: equal strings get equal keys, so "distinct" is never
said of repeated ids; Parquet files from other writers still read as the canonical trace."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.traces import Trace, TraceValidationError, distinct, iter_trace, read_trace, write_trace
from heddle.traces.arrowframe import USED_SLICE_ROWS
from heddle.traces.distinct import (
    SLICE_ROWS,
    KeyGroups,
    grouped_keys,
    joined,
    keys_distinct,
    keys_unique,
)
from tests.traces.conftest import make_frame

TEXT = st.text(alphabet=st.sampled_from(["a", "b", "\x00", "é", "🙂"]), max_size=20)


def _held(groups: KeyGroups | None) -> list[int]:
    """All the keys `groups` holds, sorted."""
    assert groups is not None
    return sorted(k for pieces in groups.pieces for p in pieces for k in p.tolist())


@settings(max_examples=200, deadline=None)
@given(values=st.lists(TEXT, max_size=40), large=st.booleans(), cut=st.integers(0, 3))
def test_equal_strings_equal_keys_and_distinct_only_when_distinct(
        values: list[str], large: bool, cut: int):
    kind = pa.large_string() if large else pa.string()
    arr = pa.array(values, kind)
    arr, values = arr.slice(cut), values[cut:]  # a slice starts inside the buffers
    groups = grouped_keys(arr)
    assert groups is not None and groups.rows == len(values)
    # each row's key is the key of its string keyed alone: equal strings, equal keys
    alone = {v: _held(grouped_keys(pa.array([v], kind))) for v in set(values)}
    held = _held(groups)
    assert held == sorted(k for v in values for k in alone[v])
    distinct = keys_distinct(arr)
    if len(set(values)) < len(values):
        assert distinct is None  # the caller looks at the strings: never "distinct"
    else:
        # strings that differ only in trailing NULs or in a later 8-byte word still differ
        assert len(set(held)) == len(values) and distinct is True


KEYS = st.lists(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 40),  # small: top bits 0
                          st.integers(2**64 - 40, 2**64 - 1)), max_size=300)


@settings(max_examples=300, deadline=None)
@given(values=KEYS, part_keys=st.sampled_from([1, 2, 7, 64, 125_000]),
       repeat=st.one_of(st.none(), st.integers(0, 299)))
def test_keys_checked_in_parts_are_unique_exactly_when_no_key_repeats(
        values: list[int], part_keys: int, repeat: int | None):
    """Keys are grouped by their top bits as they are worked out, and each group checked on
    its own, split again by the next bits while over PART_KEYS: the answer is the same as for
    all keys at once, wherever a repeat falls. The strings' keys are chosen here (the string
    "i" gets the i-th), so that keys sharing many top bits, or none, are drawn."""
    if repeat is not None and values:
        values = values + [values[repeat % len(values)]]

    def chosen(arr: pa.Array, keys: np.ndarray, work: object) -> None:
        keys[:] = np.array([values[int(s)] for s in arr.to_pylist()], dtype=np.uint64)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distinct, "PART_KEYS", part_keys)
        patch.setattr(distinct, "_slice_keys", chosen)
        groups = grouped_keys(pa.array([str(i) for i in range(len(values))], pa.string()))
        assert _held(groups) == sorted(values)
        assert keys_unique(groups) is (len(set(values)) == len(values))


def test_keys_span_slices_and_chunks():
    ids = [f"task-{i:07d}-of-a-longer-name" for i in range(SLICE_ROWS + 10)]
    chunked = pa.chunked_array([ids[:100], ids[100:]])
    assert keys_distinct(chunked) is True
    repeated = pa.chunked_array([ids[:100], ids[100:] + [ids[7]]])
    assert keys_distinct(repeated) is None


@settings(max_examples=200, deadline=None)
@given(values=st.lists(TEXT, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=3),
       part_keys=st.sampled_from([1, 3, 16, 50_000]))
def test_keys_grouped_by_file_answer_as_all_keys_at_once(
        values: list[str], cuts: list[int], part_keys: int):
    """The Parquet reader keys each file's ids on their own, grouped by top bits chosen from
    that file's size, and joins the groups: a repeat is found wherever it falls, and the
    groups hold exactly the keys of all the values keyed at once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distinct, "PART_KEYS", part_keys)
        bounds = [0, *sorted(min(c, len(values)) for c in cuts), len(values)]
        files = [pa.array(values[a:b], pa.string()) for a, b in pairwise(bounds)]
        groups = joined([grouped_keys(f) for f in files])
        assert groups is not None and groups.rows == len(values)
        assert _held(groups) == _held(grouped_keys(pa.array(values, pa.string())))
        for group, pieces in enumerate(groups.pieces):  # each key in the group of its top bits
            for p in pieces:
                assert all(k >> (64 - groups.bits) == group for k in p.tolist()) or not groups.bits
        assert keys_unique(groups) is (len(set(values)) == len(values))
    assert joined([grouped_keys(files[0]), None]) is None


def test_a_repeat_in_another_slice_is_found_whatever_the_slices_longest_ids():
    """A key depends on its string alone: once it also depended on the longest id of its
    slice of SLICE_ROWS, and a repeat in a slice with a longer id read as distinct."""
    ids = [f"t{i}" for i in range(SLICE_ROWS)] + ["a-much-longer-task-id-than-the-rest", "t5"]
    held = _held(grouped_keys(pa.array(ids)))
    assert len(set(held)) == len(ids) - 1  # "t5" twice: one key twice, no other coincides
    assert keys_distinct(pa.array(ids)) is None
    frame = make_frame(len(ids)).assign(task_id=ids)
    with pytest.raises(TraceValidationError, match="unique") as info:
        Trace.from_frame(frame)
    assert info.value.row == len(ids) - 1


def test_nulls_and_other_types_are_left_to_the_exact_check():
    assert grouped_keys(pa.array(["a", None])) is None
    assert keys_distinct(pa.array([b"a", b"b"], pa.binary())) is None


def _table(n: int) -> pa.Table:
    return pa.Table.from_pandas(Trace.from_frame(make_frame(n)).df, preserve_index=False)


def _write(table: pa.Table, path: Path, **kw) -> Path:
    pq.write_table(table.replace_schema_metadata({"heddle.schema_version": "1"}), path, **kw)
    return path


def test_a_task_id_repeated_in_a_later_row_group_names_its_row(tmp_path: Path):
    table = _table(300)
    ids = table.column("task_id").to_pylist()
    ids[250] = ids[10]
    table = table.set_column(table.schema.get_field_index("task_id"), "task_id", pa.array(ids))
    path = _write(table, tmp_path / "dup.parquet", row_group_size=100)
    with pytest.raises(TraceValidationError) as info:
        read_trace(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert (info.value.column, info.value.row) == ("task_id", 250)
    assert "unique" in message and repr(ids[10]) in message


def test_a_value_outside_a_fixed_domain_in_a_later_row_group_names_its_row(tmp_path: Path):
    table = _table(300)
    tiers = table.column("tier").to_pylist()
    tiers[217] = "platinum"
    # plain strings in one file, a dictionary per row group in the other
    for kind, values in (("plain", pa.array(tiers)), ("dictionary", pa.array(tiers).dictionary_encode())):
        bad = table.set_column(table.schema.get_field_index("tier"), "tier", values)
        path = _write(bad, tmp_path / f"{kind}.parquet", row_group_size=64)
        for read in (read_trace, lambda p: list(iter_trace(p, rows=64))):
            with pytest.raises(TraceValidationError, match="'platinum' is not one of") as info:
                read(path)
            assert (info.value.path, info.value.column, info.value.row) == (str(path), "tier", 217)
            assert "\n" not in str(info.value)


def test_another_writers_unsorted_dictionaries_with_unused_values_read_canonical(tmp_path: Path):
    """Each row group's dictionary lists values no row uses, in no order: the trace read
    back has only the used values, sorted, as if heddle had written it."""
    trace = Trace.from_frame(make_frame(200))
    table = _table(200)
    for name in ("owner", "model", "privacy"):
        values = table.column(name).to_pylist()
        extra = ["zz-unused", "aa-unused"] if name != "privacy" else []
        dictionary = pa.array(extra + sorted(set(values), reverse=True))
        lookup = {v: i for i, v in enumerate(dictionary.to_pylist())}
        encoded = pa.DictionaryArray.from_arrays(pa.array([lookup[v] for v in values], pa.int32()),
                                                 dictionary)
        table = table.set_column(table.schema.get_field_index(name), name, encoded)
    path = _write(table, tmp_path / "other.parquet", row_group_size=70)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    back = read_trace(path)
    assert back.equals(trace)
    assert list(back.df["owner"].cat.categories) == sorted(set(make_frame(200)["owner"]))
    np.testing.assert_array_equal(back.df["owner"].to_numpy(), trace.df["owner"].to_numpy())



def test_coinciding_keys_are_settled_by_comparing_the_strings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every key the same (as if all collided): distinct ids still read, a repeat is still
    found, on both readers."""
    keyed = []

    def same_key(arr: pa.Array, keys: np.ndarray, work: object) -> None:
        keyed.append(len(arr))
        keys[:] = 0

    monkeypatch.setattr(distinct, "_slice_keys", same_key)
    frame = make_frame(60)
    trace = Trace.from_frame(frame)
    for name in ("good.parquet", "good.htr"):
        write_trace(trace, tmp_path / name)
        keyed.clear()
        assert read_trace(tmp_path / name).equals(trace)
        assert sum(keyed) >= len(trace)  # the reader's ids were keyed, all alike
    table = _table(60)
    ids = table.column("task_id").to_pylist()
    ids[41] = ids[3]
    table = table.set_column(table.schema.get_field_index("task_id"), "task_id", pa.array(ids))
    path = _write(table, tmp_path / "dup.parquet")
    with pytest.raises(TraceValidationError, match="unique") as info:
        read_trace(path)
    assert (info.value.row, info.value.column) == (41, "task_id")


def test_a_value_first_used_far_into_the_file_stays_a_category(tmp_path: Path):
    """Categories in use are looked for a slice of rows at a time, stopping once all are
    seen: one used only by the last row is still kept."""
    n = USED_SLICE_ROWS * 2 + 5
    frame = make_frame(n)
    frame.loc[n - 1, "owner"] = "zed"
    table = _table(n).set_column(_table(n).schema.get_field_index("owner"), "owner",
                                 pa.array(frame["owner"]).dictionary_encode())
    trace = Trace.from_frame(frame)
    for path in (tmp_path / "heddle.parquet", tmp_path / "other.parquet"):
        if path.stem == "heddle":
            write_trace(trace, path)
        else:  # one dictionary for the whole file, "zed" unused until the last row group
            _write(table, path, row_group_size=n)
        back = read_trace(path)
        assert back.equals(trace)
        assert list(back.df["owner"].cat.categories) == ["alice", "bob", "zed"]
