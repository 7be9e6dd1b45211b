"""Recorded traces: what a live cluster ran, as a trace plus what happened to each task.

The live control plane writes them (heddle.live.control.recorder); `heddle twin check`
reads them back. A recorded directory is a directory of Parquet trace files (docs/traces.md)
that carry OUTCOME_COLUMNS after the schema's columns: every trace reader reads it as a
plain trace, and `load_recorded` reads both parts. Files are `<UTC day>-p<n>.parquet`
(parts) and `<UTC day>-c<n>.parquet` (parts merged), in time order by name; `late/` holds
rows that ended after a restart of the control plane and arrived before rows already
written. `arrival_s` and every `*_s` outcome column count from ORIGIN_KEY of the meta.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from heddle.traces.errors import TraceFormatError
from heddle.traces.parquet import META_KEY, SCHEMA_VERSION, VERSION_KEY
from heddle.traces.schema import COLUMN_NAMES
from heddle.traces.trace import Trace

__all__ = ["LATE_DIR", "ORIGIN_KEY", "OUTCOME_COLUMNS", "PART_NAME", "TIME_COLUMNS", "Recorded", "load_recorded",
           "write_part"]

LATE_DIR = "late"
ORIGIN_KEY = "recorded.origin_unix_s"
"""Meta entry: the Unix time that arrival_s (and every *_s outcome column) counts from."""
PART_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-([cp])(\d{6})\.parquet$")
OUTCOME_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("target", "str", 'node id (or cloud offer) of the last attempt, "" if never placed'),
    ("target_kind", "str", '"node", "cloud" or ""'),
    ("status", "str", "completed, failed, rejected or cancelled"),
    ("reason", "str", "why it failed, was rejected or cancelled"),
    ("attempts", "int16", "placements (re-placements after a lost attempt count)"),
    ("released_s", "float64", "the task reached the scheduler (its submission durable)"),
    ("placed_s", "float64", "last placement (NaN: never placed)"),
    ("start_s", "float64", "the agent started the step"),
    ("first_token_s", "float64", "first output token (LLM steps)"),
    ("finish_s", "float64", "the step finished"),
    ("predicted_start_s", "float64", "the twin's shadow prediction at placement"),
    ("predicted_first_token_s", "float64", "the twin's shadow prediction at placement"),
    ("predicted_finish_s", "float64", "the twin's shadow prediction at placement"),
    ("cpu_used_s", "float64", "CPU seconds the step's worker process used (NaN: not measured)"),
    ("cost_usd", "float64", "what the step cost (billed LLM calls)"),
)
"""Columns after the trace schema's: what happened to the task (times in seconds from the origin)."""
TIME_COLUMNS = ("released_s", "placed_s", "start_s", "first_token_s", "finish_s", "predicted_start_s",
                "predicted_first_token_s", "predicted_finish_s")
"""The outcome columns that are instants (seconds from the origin, like arrival_s)."""


def write_part(rows: pd.DataFrame | pa.Table, path: Path, meta: Mapping[str, str]) -> None:
    """One file: a heddle trace (schema version and meta in the footer) whose rows have the
    outcome columns after the schema's; written aside and renamed, never seen half-written."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows.reset_index(drop=True),
                                                                         preserve_index=False)
    table = table.replace_schema_metadata({VERSION_KEY: str(SCHEMA_VERSION),
                                           META_KEY: json.dumps(dict(meta), sort_keys=True)})
    tmp = path.with_name(path.name + ".partial")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def file_meta(path: Path) -> dict[str, str]:
    """The trace meta of a recorded file ({} if it has none)."""
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY.encode(), b"{}")
    return json.loads(raw)


@dataclass(slots=True)
class Recorded:
    """A recorded run: `trace` (arrival rebased to its first task: what the twin replays) and
    `outcomes` (one row per task, same order, the outcome columns on the same time base)."""

    trace: Trace
    outcomes: pd.DataFrame
    origin_unix_s: float  # the Unix time of the trace's 0


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise TraceFormatError("no recording here (expected the directory a control plane "
                               "records into, <data dir>/recorded)", path=directory)
    files = sorted(p for p in directory.iterdir() if PART_NAME.match(p.name))
    late = directory / LATE_DIR
    if late.is_dir():
        files += sorted(p for p in late.iterdir() if PART_NAME.match(p.name))
    return files


def load_recorded(directory: str | Path, *, since_unix_s: float | None = None) -> Recorded:
    """Read a recording (optionally only tasks that arrived at or after `since_unix_s`).

    Raises TraceFormatError when there is nothing to read and TraceValidationError (from the
    trace reader's rules) for bad rows."""
    directory = Path(directory)
    files = _files(directory)
    if not files:
        raise TraceFormatError("the recording holds no tasks yet", path=directory)
    origin = float(file_meta(files[0]).get("recorded.origin_unix_s", 0.0))
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path))
        except FileNotFoundError:  # merged into a bigger file since listed: read it there
            continue
        except (pa.ArrowException, OSError) as exc:
            raise TraceFormatError(f"unreadable recording part: {exc}", path=path) from None
    df = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    for name in ("kind", "privacy", "tier"):  # the schema's fixed lists need plain strings
        df[name] = df[name].astype(str)
    # a part merged while we listed is read twice: the first copy of a task is kept
    df = df.drop_duplicates("task_id", keep="first")
    if since_unix_s is not None:
        df = df[df["arrival_s"] >= since_unix_s - origin]
    if df.empty:
        raise TraceFormatError("no recorded task arrived in the window asked for", path=directory)
    df = df.sort_values("arrival_s", kind="stable", ignore_index=True)
    shift = float(df["arrival_s"].iloc[0])
    df[["arrival_s", *TIME_COLUMNS]] = df[["arrival_s", *TIME_COLUMNS]] - shift
    trace = Trace.from_frame(df[list(COLUMN_NAMES)], {"source": str(directory)})
    outcomes = df[["task_id", *(name for name, _, _ in OUTCOME_COLUMNS)]].reset_index(drop=True)
    return Recorded(trace, outcomes, origin + shift)
