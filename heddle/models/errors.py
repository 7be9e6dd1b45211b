"""Errors raised by heddle.models (one root, `ModelsError`).

Callers at the edges (CLI, file loaders in other packages) catch `ModelsError` and show its
message, which already names the file, line and field at fault and what was expected.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "ConfigError",
    "CycleError",
    "FleetError",
    "ModelsError",
    "PerfError",
    "UnknownIdError",
    "WorkloadError",
]


class ModelsError(Exception):
    """Root of every error heddle.models raises."""


class CatalogError(ModelsError, ValueError):
    """A shipped catalog file is malformed (a packaging bug: the message names file and field)."""


class UnknownIdError(ModelsError, KeyError):
    """A device, model, offer or quantization id is not in the catalog (caller's input)."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class FleetError(ModelsError, ValueError):
    """A fleet YAML file is invalid; the message names file, line and field."""


class WorkloadError(ModelsError, ValueError):
    """A task, pipeline or council description is invalid."""


class CycleError(WorkloadError):
    """A pipeline's stages depend on each other in a cycle; `cycle` lists the stage names."""

    def __init__(self, message: str, cycle: list[str]) -> None:
        super().__init__(message)
        self.cycle = cycle


class PerfError(ModelsError, ValueError):
    """The performance model cannot predict a combination (e.g. a quantization the model lacks)."""


class ConfigError(ModelsError, ValueError):
    """The settings file or an environment variable holds a bad value."""
