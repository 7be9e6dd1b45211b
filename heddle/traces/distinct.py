"""Whether a column of strings (task ids) holds no value twice, without a string hash table.

Each string is reduced with numpy, straight from Arrow's buffers, to a 64-bit key: its bytes
read 8 at a time (the last word masked to the string's length) mixed with its length. Equal
strings give equal keys, so distinct keys prove distinct strings, and that is settled by
integer hash tables, one per group of keys with the same top bits, each small enough to stay
in a core's cache (`keys_unique`): several times as fast as Arrow's string hash table
(`pc.unique`) on a million task ids. Only if two keys coincide (a repeated string, or a rare
collision) does the caller compare the strings themselves. (A numpy table of buckets by the
keys' top bits, sending only the rows of shared buckets to one hash table, measured no
cheaper than that one table alone: ~37 ms against ~39 ms of CPU per million keys, either
way mostly cache misses and page faults.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["Strings", "keys_distinct", "keys_unique", "string_keys"]

SLICE_ROWS = 65_536
"""Rows keyed at a time: the temporaries (a few 8-byte arrays per row) stay ~3 MB."""
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_LENGTH_MULTIPLIER = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(29)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)
"""_MASKS[k] keeps the low k bytes of a little-endian word (k = 8: all of it)."""


def _slice_keys(arr: pa.Array) -> np.ndarray:
    n = len(arr)
    offset_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], offset_type, n + 1,
                            arr.offset * np.dtype(offset_type).itemsize).astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    # the bytes, padded so an 8-byte read starting at any string's end stays inside
    data = np.zeros(last - first + 8, dtype=np.uint8)
    if last > first:
        data[: last - first] = np.frombuffer(arr.buffers()[2], np.uint8, last - first, first)
    # words[i] is the 8 bytes starting at byte i (unaligned reads, no copy)
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    starts = offsets[:-1] - first if first else offsets[:-1]
    lengths = np.diff(offsets)
    keys = lengths.astype(np.uint64) * _LENGTH_MULTIPLIER
    # a string is mixed in once per 8 bytes it has (once if empty), so its key depends on it
    # alone, not on the longest string of its slice
    _mix(keys, words[starts], _MASKS[np.minimum(lengths, 8)])
    at = 8
    while len(rows := np.flatnonzero(lengths > at)):  # the rows with bytes left at `at`
        if len(rows) == n:
            _mix(keys, words[starts + at], _MASKS[np.minimum(lengths - at, 8)])
        else:
            start, length = starts[rows], lengths[rows]
            mixed = keys[rows]
            _mix(mixed, words[start + at], _MASKS[np.minimum(length - at, 8)])
            keys[rows] = mixed
        at += 8
    return keys


def _mix(keys: np.ndarray, words: np.ndarray, masks: np.ndarray) -> None:
    """Mix each string's next 8 bytes (its word, masked to the bytes it has) into its key."""
    words &= masks
    keys ^= words
    keys *= _MULTIPLIER
    keys ^= keys >> _SHIFT


Strings = pa.Array | pa.ChunkedArray | list[pa.Array]
"""One column: an array, or its chunks (which may differ in string type)."""


def string_keys(values: Strings) -> np.ndarray | None:
    """A uint64 key per string (equal strings, equal keys); None for types or nulls it skips."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else (
        [values] if isinstance(values, pa.Array) else values)
    if not all((pa.types.is_string(c.type) or pa.types.is_large_string(c.type))
               and not c.null_count for c in chunks):
        return None
    parts = [_slice_keys(c.slice(start, SLICE_ROWS))
             for c in chunks for start in range(0, len(c), SLICE_ROWS)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def keys_distinct(values: Strings, keys: np.ndarray | None = None) -> bool | None:
    """True if no string repeats; None if that needs an exact look (keys coincide, or a type
    or null that `string_keys` skips). `keys`: the values' `string_keys`, if worked out
    already (the Parquet reader keys each file's ids as soon as they are read)."""
    keys = string_keys(values) if keys is None else keys
    if keys is None:
        return None
    return True if keys_unique(keys) else None


PART_KEYS = 125_000
"""Keys per hash table at most. pandas' table of 125,000 keys stays in a core's cache (~1.1 ms,
~9 ns a key); one table of a million keys misses it on nearly every insert and maps ~32 MB
in (~42 ms, ~42 ns a key; measured on the project's machine)."""


def keys_unique(keys: np.ndarray) -> bool:
    """True if no key repeats. Equal keys share their top bits, so the keys are grouped by
    their top bits into parts of about PART_KEYS (a radix sort of one byte per key) and each
    part is checked on its own: ~17 ms for a million keys instead of ~42 in one table."""
    parts = -(-len(keys) // PART_KEYS)
    if parts <= 1:
        return bool(pd.Index(keys).is_unique)
    bits = min(16, (parts - 1).bit_length())
    top = (keys >> np.uint64(64 - bits)).astype(np.uint8 if bits <= 8 else np.uint16)
    grouped = keys[np.argsort(top, kind="stable")]
    ends = np.cumsum(np.bincount(top, minlength=1 << bits)).tolist()
    return all(pd.Index(grouped[start:end]).is_unique
               for start, end in zip([0, *ends[:-1]], ends, strict=True))
