"""Workload traces: the schema, the streaming file format, importers, synthesis, statistics."""

from heddle.traces.errors import TraceError, TraceFormatError, TraceValidationError
from heddle.traces.samples import shipped_trace_names, shipped_trace_path
from heddle.traces.schema import COLUMN_NAMES, COLUMNS, Column, Encoding, normalize, validate
from heddle.traces.trace import Trace, concat_traces, from_tasks, to_tasks
from heddle.traces.tracefile import (
    FORMAT_VERSION,
    TraceWriter,
    iter_trace,
    read_trace,
    write_trace,
)

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "FORMAT_VERSION",
    "Column",
    "Encoding",
    "Trace",
    "TraceError",
    "TraceFormatError",
    "TraceValidationError",
    "TraceWriter",
    "concat_traces",
    "from_tasks",
    "iter_trace",
    "normalize",
    "read_trace",
    "shipped_trace_names",
    "shipped_trace_path",
    "to_tasks",
    "validate",
    "write_trace",
]
