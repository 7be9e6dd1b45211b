"""Shadow predictions: what the twin predicts for each task the control plane starts, next
to what then happens, so a drift between the twin and the cluster shows without running
anything.

At placement the task is predicted to start at once (the scheduling core is work-conserving)
and to run for the service time the twin's node process gives it (`heddle.models.service`)
on the node at the per-core speed its agent measured. When the task completes, the error is
the actual service time (the agent's start to finish) over the predicted one, minus one:
+0.10 means the step took 10% longer than the twin said. The running figure is over the
last RUNNING_WINDOW completions, overall and per node.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from heddle.models import Node, NodeState, Task
from heddle.models.service import service_time

__all__ = ["RUNNING_WINDOW", "Shadow", "ShadowFigure"]

RUNNING_WINDOW = 500
"""Completions the running error figure covers (recent behaviour, not the whole history)."""
KEPT_ENDED = 10_000
"""Ended tasks whose predicted and actual service `heddle status JOB` can still show."""


@dataclass(frozen=True, slots=True)
class ShadowFigure:
    """The running error over recent completions (None when there are none)."""

    tasks: int
    median_abs_error: float | None
    mean_error: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "median_abs_error": self.median_abs_error,
                "mean_error": self.mean_error}


def _figure(errors: deque[float]) -> ShadowFigure:
    if not errors:
        return ShadowFigure(0, None, None)
    return ShadowFigure(len(errors), statistics.median(abs(e) for e in errors),
                        statistics.fmean(errors))


class Shadow:
    """Predictions by task id and the errors of recent completions."""

    def __init__(self, window: int = RUNNING_WINDOW) -> None:
        self.window = window
        self.predicted: dict[str, tuple[float, float, float]] = {}  # task -> (start, first token, finish)
        self.errors: deque[float] = deque(maxlen=window)
        self.by_node: dict[str, deque[float]] = {}
        self.last: dict[str, tuple[float, float]] = {}  # task -> (predicted s, actual s), ended

    def placed(self, key: str, task: Task, node: Node, state: NodeState | None, now: float,
               running: int) -> tuple[float, float, float] | None:
        """Predict the attempt that starts now on `node` (`running`: tasks there, this one
        included); None if the performance model cannot (a model the catalog lacks)."""
        resident = state is None or task.model is None or any(
            m == task.model for m, _ in state.resident_models)
        try:
            st = service_time(node, task, speed_factor=state.speed_factor if state else 1.0,
                              resident=resident, batch=max(1, running))
        except (KeyError, ValueError):
            self.predicted.pop(key, None)
            return None
        prediction = (now, now + st.first_token_s, now + st.service_s)
        self.predicted[key] = prediction
        return prediction

    def completed(self, key: str, node: str, started_at: float | None,
                  finished_at: float | None) -> float | None:
        """Record the actual service time; returns the error (None: nothing to compare)."""
        prediction = self.predicted.pop(key, None)
        if prediction is None or started_at is None or finished_at is None:
            return None
        predicted_s = prediction[2] - prediction[0]
        actual_s = max(0.0, finished_at - started_at)
        self.last[key] = (predicted_s, actual_s)
        if len(self.last) > KEPT_ENDED:
            del self.last[next(iter(self.last))]
        if predicted_s <= 0:
            return None
        error = actual_s / predicted_s - 1.0
        self.errors.append(error)
        self.by_node.setdefault(node, deque(maxlen=self.window)).append(error)
        return error

    def ended(self, key: str) -> None:
        """The task ended without completing: its prediction is dropped."""
        self.predicted.pop(key, None)

    def figure(self, node: str | None = None) -> ShadowFigure:
        if node is None:
            return _figure(self.errors)
        return _figure(self.by_node.get(node, deque()))
