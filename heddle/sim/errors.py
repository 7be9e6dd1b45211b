"""Errors raised by the twin (one root, `SimError`).

Callers of `simulate()` (the CLI, the advisor) are expected to catch `SimError`; a
`PrivacyViolationError` means a placement broke the hard privacy rule and must never be
swallowed: it is a bug in a placement path, not a property of the workload.
"""

from __future__ import annotations

__all__ = ["PrivacyViolationError", "ScenarioError", "SimError", "WorkloadError"]


class SimError(Exception):
    """Root of every error the twin raises."""


class ScenarioError(SimError, ValueError):
    """A scenario file is malformed: the message names the file and the field."""


class WorkloadError(SimError, ValueError):
    """The trace or task list cannot be simulated: the message names the task and the field."""


class PrivacyViolationError(SimError, AssertionError):
    """A task ran somewhere its privacy tag forbids. The run fails loudly; nothing is hidden."""
