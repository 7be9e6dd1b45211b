"""Whether a column of strings (task ids) holds no value twice, without a string hash table.

Each string is reduced with numpy, straight from Arrow's buffers, to a 64-bit key: its bytes
read 8 at a time (the last word masked to the string's length) mixed with its length. Equal
strings give equal keys, so distinct keys prove distinct strings, and that is settled by
integer hash tables, one per group of keys with the same top bits, each small enough to stay
in a core's cache (`keys_unique`): several times as fast as Arrow's string hash table
(`pc.unique`) on a million task ids. Only if two keys coincide (a repeated string, or a rare
collision) does the caller compare the strings themselves. The keys are grouped by their top
bits as each slice is keyed (`grouped_keys`): their order of rows is never needed, and
building an array of all keys in row order, then sorting it into groups, took ~30 MB of fresh
memory per million keys, which the kernel has to map in (on the project's VMs the largest
part of the cost; docs/traces.md). (A numpy table of buckets by the keys' top bits, sending
only the rows of shared buckets to one hash table, measured no cheaper than that one table
alone: ~37 ms against ~39 ms of CPU per million keys.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "KeyGroups",
    "Strings",
    "grouped_keys",
    "joined",
    "keys_distinct",
    "keys_unique",
]

SLICE_ROWS = 65_536
"""Rows keyed at a time (a row group of a heddle file): the same few work arrays of 512 KB
serve every slice of a call."""
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_LENGTH_MULTIPLIER = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(29)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)
"""_MASKS[k] keeps the low k bytes of a little-endian word (k = 8: all of it)."""
_WORD_MASKS = (_MASKS, np.concatenate([np.zeros(8, np.uint64), _MASKS]))
"""By a string's length (clipped to the last entry): the mask of its first 8-byte word, and
of its second (none of a string of at most 8 bytes). Every string is mixed in twice, so two
rounds run over a whole slice with no selection of rows; longer strings get more rounds."""
_PAD = 16
"""Zero bytes after a slice's strings: the two words read at any string's start stay inside."""


@dataclass(slots=True)
class _Work:
    """The arrays one call of `grouped_keys` works in, slice after slice (no allocation per
    slice: numpy's temporaries of a slice came from fresh memory, page faults included)."""

    starts: np.ndarray = field(default_factory=lambda: np.empty(SLICE_ROWS, np.int64))
    lengths: np.ndarray = field(default_factory=lambda: np.empty(SLICE_ROWS, np.int64))
    keys: np.ndarray = field(default_factory=lambda: np.empty(SLICE_ROWS, np.uint64))
    word: np.ndarray = field(default_factory=lambda: np.empty(SLICE_ROWS, np.uint64))
    top: np.ndarray = field(default_factory=lambda: np.empty(SLICE_ROWS, np.uint8))
    mask: np.ndarray = field(default_factory=lambda: np.empty(SLICE_ROWS, np.uint64))
    data: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))


def _slice_keys(arr: pa.Array, keys: np.ndarray, work: _Work) -> None:
    """Key a slice of at most SLICE_ROWS strings into `keys`: a uint64 per string, in row
    order, that depends on the string alone (equal strings, equal keys)."""
    n = len(arr)
    offset_type = np.dtype(np.int64 if pa.types.is_large_string(arr.type) else np.int32)
    offsets = np.frombuffer(arr.buffers()[1], offset_type, n + 1, arr.offset * offset_type.itemsize)
    first, last = int(offsets[0]), int(offsets[-1])
    size = last - first
    if len(work.data) < size + _PAD:
        work.data = np.empty(max(size + _PAD, 2 * len(work.data)), np.uint8)
    data = work.data
    if size:
        data[:size] = np.frombuffer(arr.buffers()[2], np.uint8, size, first)
    data[size : size + _PAD] = 0
    # words[i] is the 8 bytes starting at byte i (unaligned reads, no copy)
    words = np.ndarray((size + _PAD - 7,), dtype="<u8", buffer=data, strides=(1,))
    starts, lengths = work.starts[:n], work.lengths[:n]
    np.subtract(offsets[:-1], first, out=starts)
    np.subtract(offsets[1:], offsets[:-1], out=lengths)
    np.multiply(lengths.view(np.uint64), _LENGTH_MULTIPLIER, out=keys)
    mask = work.mask[:n]
    for at, masks in enumerate(_WORD_MASKS):
        # indexing reads each unaligned word where it is; np.take (even with out=) first
        # copied the whole strided view into an aligned array, 8 bytes per byte of the
        # slice's strings (~5.5 MB a slice of heddle's ids, twice: ~25 ms per million ids)
        word = words[8 * at :][starts]
        np.take(masks, lengths, out=mask, mode="clip")
        _mix(keys, word, mask, word)
    at = 16
    while len(rows := np.flatnonzero(lengths > at)):  # the rows with bytes left at `at`
        start, length = starts[rows], lengths[rows]
        mixed, more = keys[rows], words[start + at]
        _mix(mixed, more, _MASKS[np.minimum(length - at, 8)], more)
        keys[rows] = mixed
        at += 8


def _mix(keys: np.ndarray, words: np.ndarray, masks: np.ndarray, spare: np.ndarray) -> None:
    """Mix each string's next 8 bytes (its word, masked to the bytes it has) into its key;
    `spare` may be `words` (overwritten)."""
    np.bitwise_and(words, masks, out=words)
    keys ^= words
    keys *= _MULTIPLIER
    np.right_shift(keys, _SHIFT, out=spare)
    keys ^= spare


Strings = pa.Array | pa.ChunkedArray | list[pa.Array]
"""One column: an array, or its chunks (which may differ in string type)."""


def _slices(values: Strings) -> list[pa.Array] | None:
    """The values in slices of at most SLICE_ROWS; None for types or nulls that are not keyed."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else (
        [values] if isinstance(values, pa.Array) else values)
    if not all((pa.types.is_string(c.type) or pa.types.is_large_string(c.type))
               and not c.null_count for c in chunks):
        return None
    return [c.slice(start, SLICE_ROWS) for c in chunks for start in range(0, len(c), SLICE_ROWS)]


PART_KEYS = 50_000
"""Keys per hash table at most. pandas' table of 50,000 keys stays in a core's cache (~0.5 ms,
~10 ns a key); one of 125,000 took ~3 ms (~25 ns a key) and one of a million keys missed the
cache on nearly every insert and mapped ~32 MB in (~42 ms; measured on the project's machine)."""
MAX_GROUP_BITS = 8
"""At most 2**8 groups of keys at once; a group still over PART_KEYS is split again."""


@dataclass(slots=True)
class KeyGroups:
    """Keys of strings grouped by their top `bits` bits (group g holds, in pieces, the keys
    whose top bits are g), which is all that asking whether a key repeats needs: equal keys
    share their top bits. Grouped as they are worked out, a slice at a time, the keys of a
    million strings never make a whole array in row order, nor the temporaries that grouping
    it took (a sort order and a copy, ~25 MB of fresh memory per million keys)."""

    bits: int
    pieces: list[list[np.ndarray]]
    rows: int = 0

    @classmethod
    def empty(cls, bits: int) -> KeyGroups:
        return cls(bits, [[] for _ in range(1 << bits)])

    def add(self, keys: np.ndarray, work: _Work) -> None:
        """Add a slice's keys (copied: `keys` may be a work array)."""
        self.rows += len(keys)
        if not self.bits:
            self.pieces[0].append(keys.copy())
            return
        for group, part in _by_top(keys, 0, self.bits, work):
            self.pieces[group].append(part)


def _split_bits(rows: int, most: int = MAX_GROUP_BITS) -> int:
    """How many more top bits split `rows` keys into groups of about PART_KEYS (at most `most`)."""
    parts = -(-rows // PART_KEYS)
    return min(most, (parts - 1).bit_length()) if parts > 1 else 0


def _by_top(keys: np.ndarray, known_bits: int, bits: int,
            work: _Work | None = None) -> list[tuple[int, np.ndarray]]:
    """`keys` grouped by their `bits` bits under the top `known_bits` (a radix sort of one byte
    per key): (group, a copy of its keys) for each group that has any. With `work`, the
    temporaries go in its arrays (a slice's keys: no fresh memory)."""
    n = len(keys)
    word = np.empty(n, np.uint64) if work is None else work.word[:n]
    top = np.empty(n, np.uint8) if work is None else work.top[:n]
    np.right_shift(keys << np.uint64(known_bits) if known_bits else keys, np.uint64(64 - bits), out=word)
    np.copyto(top, word, casting="unsafe")
    ordered = keys[np.argsort(top, kind="stable")]
    ends = np.cumsum(np.bincount(top, minlength=1 << bits)).tolist()
    return [(group, ordered[start:end])
            for group, (start, end) in enumerate(zip([0, *ends[:-1]], ends, strict=True)) if end > start]


def grouped_keys(values: Strings) -> KeyGroups | None:
    """A key per string (`_slice_keys`), grouped by their top bits; None for types other than
    string or large_string, or for nulls (left to the caller's exact check)."""
    slices = _slices(values)
    if slices is None:
        return None
    groups = KeyGroups.empty(_split_bits(sum(len(s) for s in slices)))
    work = _Work()
    for part in slices:
        keys = work.keys[: len(part)]
        _slice_keys(part, keys, work)
        groups.add(keys, work)
    return groups


def joined(groups: list[KeyGroups | None]) -> KeyGroups | None:
    """Several columns' key groups as one (None if any is None): the coarsest grouping wins."""
    if any(g is None for g in groups):
        return None
    bits = min((g.bits for g in groups if g is not None), default=0)
    out = KeyGroups.empty(bits)
    for g in groups:
        assert g is not None
        out.rows += g.rows
        for group, pieces in enumerate(g.pieces):
            out.pieces[group >> (g.bits - bits)].extend(pieces)
    return out


def keys_distinct(values: Strings, keys: KeyGroups | None = None) -> bool | None:
    """True if no string repeats; None if that needs an exact look (keys coincide, or a type
    or null that is not keyed). `keys`: the values' `grouped_keys`, if worked out
    already (the Parquet reader keys each file's ids as soon as they are read)."""
    keys = grouped_keys(values) if keys is None else keys
    if keys is None:
        return None
    return True if keys_unique(keys) else None


def keys_unique(keys: KeyGroups) -> bool:
    """True if no key repeats. Each group of keys that share their top bits is checked on its
    own, split further by the next bits while over PART_KEYS (a radix sort of one byte per key)."""
    return all(_unique(pieces[0] if len(pieces) == 1 else np.concatenate(pieces), keys.bits)
               for pieces in keys.pieces if pieces)


def _unique(keys: np.ndarray, known_bits: int) -> bool:
    """Whether `keys`, which share their top `known_bits` bits, hold no key twice."""
    bits = _split_bits(len(keys), min(MAX_GROUP_BITS, 64 - known_bits))
    if not bits:
        return bool(pd.Index(keys, copy=False).is_unique)
    return all(_unique(part, known_bits + bits) for _, part in _by_top(keys, known_bits, bits))
