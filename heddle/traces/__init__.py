"""Workload traces: the schema, Parquet files, importers, synthesis, statistics.

docs/traces.md describes the columns, the file format and every command.
"""

from heddle.traces.arrivals import ArrivalProcess, sample_arrivals
from heddle.traces.csvrows import SkipReport
from heddle.traces.errors import TraceError, TraceFormatError, TraceValidationError
from heddle.traces.fitted import TOKEN_PROFILES, LogNormal, fit_lognormal
from heddle.traces.importers import (
    FORMATS,
    CsvMapping,
    ImportDefaults,
    ImportResult,
    import_azure,
    import_burstgpt,
    import_csv,
    import_trace,
    load_mapping,
)
from heddle.traces.parquet import SCHEMA_VERSION, TraceWriter
from heddle.traces.samples import resolve_trace, shipped_trace_names, shipped_trace_path
from heddle.traces.schema import COLUMN_NAMES, COLUMNS, Column, Encoding, normalize, validate
from heddle.traces.stats import TraceStats, trace_stats, write_plots
from heddle.traces.synth import SynthConfig, synthesize
from heddle.traces.trace import Trace, concat_traces, from_tasks, to_tasks
from heddle.traces.tracefile import convert_trace, is_legacy, iter_trace, read_trace, write_trace

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "FORMATS",
    "SCHEMA_VERSION",
    "TOKEN_PROFILES",
    "ArrivalProcess",
    "Column",
    "CsvMapping",
    "Encoding",
    "ImportDefaults",
    "ImportResult",
    "LogNormal",
    "SkipReport",
    "SynthConfig",
    "Trace",
    "TraceError",
    "TraceFormatError",
    "TraceStats",
    "TraceValidationError",
    "TraceWriter",
    "concat_traces",
    "convert_trace",
    "fit_lognormal",
    "from_tasks",
    "import_azure",
    "import_burstgpt",
    "import_csv",
    "import_trace",
    "is_legacy",
    "iter_trace",
    "load_mapping",
    "normalize",
    "read_trace",
    "resolve_trace",
    "sample_arrivals",
    "shipped_trace_names",
    "shipped_trace_path",
    "synthesize",
    "to_tasks",
    "trace_stats",
    "validate",
    "write_plots",
    "write_trace",
]
