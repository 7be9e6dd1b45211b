"""Errors raised by the advisor; the CLI catches `AdvisorError` and prints its message."""

from __future__ import annotations


class AdvisorError(Exception):
    """Root of every advisor error. Handled by `heddle advise` (exit code 1 with the message)."""


class WorkloadError(AdvisorError, ValueError):
    """The trace cannot be analysed (empty, missing a column, or a value out of range)."""


class SizingError(AdvisorError):
    """The CP-SAT sizing model found no feasible mix (e.g. a budget below any useful purchase)."""


class TwinError(AdvisorError, RuntimeError):
    """The twin (`heddle.sim`) failed or returned results the advisor cannot read."""


class ReportExistsError(AdvisorError, FileExistsError):
    """The output folder already holds a report and overwriting was not asked for (`--force`)."""
