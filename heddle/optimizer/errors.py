"""Errors raised by the optimizer package (one root: `OptimizerError`).

`place()` itself never raises for a task it cannot place (that is a REJECTED decision with a
reason); these errors mean the *call* was wrong. The CLI and the twin's composition root are
expected to catch them and report them to the user.
"""

from __future__ import annotations

__all__ = ["OptimizerError", "TaskFileError", "UnknownPolicyError"]


class OptimizerError(Exception):
    """Root of every error raised by heddle.optimizer."""


class UnknownPolicyError(OptimizerError, KeyError):
    """A policy name that is not in the registry (caught by the CLI, which lists the names)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown policy"


class TaskFileError(OptimizerError, ValueError):
    """A task file that does not validate; the message names the source, index and field."""
