"""Shadow predictions: what the twin predicts for each task the control plane starts, next
to what then happens, so a drift between the twin and the cluster shows without running
anything.

At placement the task is predicted to start at once (the scheduling core is work-conserving)
and to run for the service time the twin's node process gives it (`heddle.models.service`)
on the node at the per-core speed its agent measured. When the task completes, the error is
the actual service time (the agent's start to finish) over the predicted one, minus one:
+0.10 means the step took 10% longer than the twin said. The running figure is over the
last RUNNING_WINDOW completions, overall and per node.

The same completions measure how each node's steps run around the twin's rule, which the
exported fleet carries (`heddle fleet export`; docs/fidelity.md): `service_cv`, the spread of
actual / predicted service time (2% trimmed at each end; a shared machine's core runs a step faster or slower with
what else runs), and `dispatch_s`, the mean time from the moment a step could start (it
arrived, or the node's previous step ended, whichever is later) to its start on the agent,
over steps placed on a free slot (2% trimmed at each end): the control plane's round trip,
which the twin, starting a step the instant it can, does not have otherwise. The mean, not
the median: the twin adds it to every step, and at 70% load each millisecond a busy node
loses between steps adds several to the wait (the median was 0.1-0.6 ms under the mean).
Aggregates per node, never a task's own figure: the twin draws its own service times with
that spread. Where the export also carries a node's speed over time (`cpu_speed_profile`),
which the twin replays, a processor step's ratio is taken around the speed of the second it
started in (`measured(profiles=...)`): around the control plane's running speed it holds the
slow and fast spells too, and the twin, drawing it on top of the replayed speed, would count
them twice (a twin queueing 16-20% deeper at p95 than the live window on the quiet machine). A burn step reports its own time inside its worker (`heddle.live.agent.
worker_main.burn`): the rest of its service on the agent, the round trip to the worker, holds
the slot without counting in the node's measured speed, so `dispatch_s` adds its mean.
A processor step that starts on an idle node (nothing else running, and it arrived after the
node's previous step ended) takes longer than one started back to back: the core has to wake
(`measured_wake`: `wake_s`, and `warm`, the level of the steps started back to back, whose
speed the export then writes; the spread is around each step's level). It also starts sooner
after it could: a step back to back waits for its predecessor's completion to reach the control
plane (1.4-1.6 ms against 2.3-2.6 ms on the test's machine), so where both kinds are seen
`dispatch_s` is the steps' started back to back and `idle_dispatch_s` the others'.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from heddle.models import Node, NodeState, Task, TaskKind
from heddle.models.service import service_time

__all__ = ["RUNNING_WINDOW", "Completion", "Measured", "Placed", "Shadow", "ShadowFigure", "measured_quantiles",
           "measured_spread", "measured_wake", "spell_ratio"]

RUNNING_WINDOW = 500
"""Completions the running error figure covers (recent behaviour, not the whole history)."""
KEPT_ENDED = 10_000
"""Ended tasks whose predicted and actual service `heddle status JOB` can still show."""
KEPT_PER_NODE = 20_000
"""Completions per node whose ratio and start delay a window's figures (`measured`) can use."""
MIN_SAMPLES = 20
"""Completions a node needs in the window before its spread and start delay are figures."""
RATIO_CLIP = (0.05, 20.0)
"""actual / predicted outside this is a stall or a clock jump, counted at the bound."""
TRIM = 0.02
"""Share of the log-ratios left out at each end of a node's spread (at least one each)."""
TRIMMED_SD = 0.890
"""A normal distribution's standard deviation without 2% at each end, in its own."""
MIN_WAKE_S = 1e-5
"""A wake shorter than this (10 us) is none: idle starts were no slower."""
SPREAD_QUANTILES = 41
"""Quantiles of a node's spread exported (probabilities 0, 0.025, ..., 1 of its ratios but
the least and the greatest): its shape to within a fortieth of the steps, the upper tail
that queues a node up included, from the 20-500 a window has."""


@dataclass(slots=True)
class Placed:
    """What the shadow keeps of one placed task until it ends."""

    prediction: tuple[float, float, float]  # start, first token, finish (Unix s)
    node: Node  # the node predicted on, at the speed its agent measured then
    task: Task
    ready: float  # when it could have started (nan: not placed on a free slot, or a stage)
    idle: bool | None  # started on an idle node, not back to back (None: a stage, not known)


class Completion(NamedTuple):
    """What one completion on a node left for the window's figures (`Shadow.measured`)."""

    ended: float  # its finish (agent clock, Unix s)
    ratio: float  # actual / predicted service time
    delay: float  # from when it could start to its start (nan: not placed on a free slot)
    trip: float  # a burn step's round trip to its worker (nan: not a burn step)
    started: float  # its start (agent clock, Unix s)
    actual_s: float  # its service time on the agent
    node: Node  # the node it was predicted on
    task: Task
    idle: bool | None = None  # started on an idle node, not back to back (None: not known)

    @property
    def burns(self) -> bool:
        """A processor step with work: the twin times it by the rule at the node's speed
        (`service_time`), so its speed, level and wake are measured on it."""
        return self.task.kind is TaskKind.PROCESSOR and self.task.cpu_seconds > 0


class Measured(NamedTuple):
    """What a window's completions measured of one node's steps (the exported fleet's fields;
    `warm`: the level of its processor steps started back to back against the node's speed,
    which the export divides the speed by, `wake_s` being the rest: `measured_wake`)."""

    service_cv: float
    dispatch_s: float
    service_quantiles: tuple[float, ...] = ()
    wake_s: float = 0.0
    warm: float = 1.0
    idle_dispatch_s: float | None = None  # dispatch_s is then the steps' started back to back


@dataclass(frozen=True, slots=True)
class ShadowFigure:
    """The running error over recent completions (None when there are none)."""

    tasks: int
    median_abs_error: float | None
    mean_error: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "median_abs_error": self.median_abs_error,
                "mean_error": self.mean_error}


def measured_spread(ratios: list[float]) -> float:
    """The coefficient of variation of the lognormal whose log-sd is the log-ratios' (what
    the twin draws with: heddle.sim's NodeRt.spread), without the TRIM share at each end: a
    few steps the rule itself mispredicts (a model load the control plane did not expect)
    must not stand for the node's spread, but the heavy upper tail of a shared core's steps
    must (an interquartile range misses it: 0.07 where the standard deviation says 0.2)."""
    logs = [math.log(min(max(r, RATIO_CLIP[0]), RATIO_CLIP[1])) for r in ratios]
    sigma = statistics.pstdev(_trimmed(logs)) / TRIMMED_SD
    return math.sqrt(math.expm1(sigma * sigma))


def measured_quantiles(ratios: list[float]) -> tuple[float, ...]:
    """The shape of the spread: SPREAD_QUANTILES quantiles of actual / predicted, evenly
    spaced from the least to the greatest but one at each end (one step the rule itself
    mispredicts, such as a model load the control plane did not expect: a cold node's first
    step), scaled to mean 1 (the node's speed sets the level; this the shape around it).
    Not trimmed as the spread's coefficient of variation is: the few slowest steps of a core
    shared with other work hold its queue up most (the wait grows with the service time's
    second moment), and they are what a lognormal of the trimmed spread leaves out."""
    kept = sorted(min(max(r, RATIO_CLIP[0]), RATIO_CLIP[1]) for r in ratios)[1:-1]
    last = len(kept) - 1
    table = []
    for k in range(SPREAD_QUANTILES):
        at = k * last / (SPREAD_QUANTILES - 1)
        low = int(at)
        high = min(low + 1, last)
        table.append(kept[low] + (kept[high] - kept[low]) * (at - low))
    steps = SPREAD_QUANTILES - 1
    mean = (sum(table) - (table[0] + table[-1]) / 2) / steps  # of the linear pieces between them
    return tuple(q / mean for q in table)


def spell_ratio(row: Completion, profile: Sequence[tuple[float, float]]) -> float:
    """A completion's service time over the twin's rule (`service_time`) at the node's speed
    in force when it started: the last entry of `profile` (from Unix s, speed) at or before
    its start, as the twin's `pace` events replay it (heddle.sim.fidelity.measured_speeds);
    its ratio around the control plane's speed when it is not a processor step or no entry
    had begun."""
    at = bisect.bisect_right(profile, (row.started, math.inf)) - 1
    if not row.burns or at < 0:
        return row.ratio
    rule = service_time(row.node, row.task, speed_factor=profile[at][1] / row.node.device.cpu_single_core_relative)
    return row.actual_s / rule.service_s


def measured_wake(rows: Sequence[Completion], ratios: Sequence[float]) -> tuple[float, float]:
    """(warm, wake_s) of a node's processor steps from their `ratios` (actual / the rule at the
    node's speed): `warm`, the mean ratio of the steps started back to back, and `wake_s`, the
    mean time a step started on the idle node took beyond that level. A core that has idled
    spends more CPU time on the same work at first (caches, predictors: 0.05-0.07 ms of CPU
    per step on the test's machine, 1-1.5 ms of wall time under a 5% cap), so the node's
    measured speed, over all its steps, is a blend: too slow for the steps in a burst, too
    fast for the first. (1, 0) with fewer than MIN_SAMPLES of either kind or no wake seen.
    Each mean leaves out the TRIM share at each end, at least one value (a stall, a clock jump)."""
    # the step's own time: a burn step's round trip to its worker is in `dispatch_s`, and the
    # node's speed does not count it (counted in the level too, the twin would add it twice)
    steps = [(row, row.actual_s - (0.0 if math.isnan(row.trip) else row.trip), r)
             for row, r in zip(rows, ratios, strict=True)
             if row.idle is not None and row.burns]
    warm = [r * own / row.actual_s for row, own, r in steps if not row.idle and row.actual_s > 0]
    idle = [(row, own, r) for row, own, r in steps if row.idle]
    if len(warm) < MIN_SAMPLES or len(idle) < MIN_SAMPLES:
        return 1.0, 0.0
    level = statistics.fmean(_trimmed(warm))
    # own - the rule at the level: own - (actual / r) * level
    wake = statistics.fmean(_trimmed([own - row.actual_s / r * level for row, own, r in idle]))
    return (level, wake) if wake >= MIN_WAKE_S else (1.0, 0.0)


def _trimmed(values: list[float]) -> list[float]:
    """`values` sorted, without the TRIM share at each end (at least one each)."""
    ordered = sorted(values)
    cut = max(1, int(len(ordered) * TRIM))
    return ordered[cut:-cut]


def _figure(errors: deque[float]) -> ShadowFigure:
    if not errors:
        return ShadowFigure(0, None, None)
    return ShadowFigure(len(errors), statistics.median(abs(e) for e in errors),
                        statistics.fmean(errors))


class Shadow:
    """Predictions by task id and the errors of recent completions."""

    def __init__(self, window: int = RUNNING_WINDOW) -> None:
        self.window = window
        self.placements: dict[str, Placed] = {}  # task -> its prediction, until it ends
        self.errors: deque[float] = deque(maxlen=window)
        self.by_node: dict[str, deque[float]] = {}
        self.last: dict[str, tuple[float, float]] = {}  # task -> (predicted s, actual s), ended
        self.node_ended: dict[str, float] = {}  # node -> its last completion's end (agent clock)
        self.history: dict[str, deque[Completion]] = {}

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
            self.placements.pop(key, None)
            return None
        prediction = (now, now + st.first_token_s, now + st.service_s)
        ready, idle = math.nan, None
        if not task.depends_on:  # a stage's could-start is its inputs' arrival
            ended = self.node_ended.get(str(node.id), -math.inf)
            # idle: nothing else runs there and it did not wait for the node's previous step
            idle = running == 1 and task.arrival_s > ended
            if running <= node.slots:
                ready = max(task.arrival_s, ended)
        self.placements[key] = Placed(prediction, node, task, ready, idle)
        return prediction

    def prediction(self, key: str) -> tuple[float, float, float] | None:
        """The placed task's predicted (start, first token, finish), None if there is none."""
        placed = self.placements.get(key)
        return placed.prediction if placed is not None else None

    def completed(self, key: str, node: str, started_at: float | None, finished_at: float | None,
                  inside_s: float | None = None) -> float | None:
        """Record the actual service time (`inside_s`: the part of it the step itself took, as
        a burn step reports it); returns the error (None: nothing to compare)."""
        placed = self.placements.pop(key, None)
        if finished_at is not None:
            self.node_ended[node] = max(finished_at, self.node_ended.get(node, -math.inf))
        if placed is None or started_at is None or finished_at is None:
            return None
        predicted_s = placed.prediction[2] - placed.prediction[0]
        actual_s = max(0.0, finished_at - started_at)
        self.last[key] = (predicted_s, actual_s)
        if len(self.last) > KEPT_ENDED:
            del self.last[next(iter(self.last))]
        if predicted_s <= 0:
            return None
        error = actual_s / predicted_s - 1.0
        self.errors.append(error)
        self.by_node.setdefault(node, deque(maxlen=self.window)).append(error)
        delay = started_at - placed.ready  # nan: not placed on a free slot
        trip = max(0.0, actual_s - inside_s) if inside_s is not None else math.nan  # nan: not a burn step
        self.history.setdefault(node, deque(maxlen=KEPT_PER_NODE)).append(Completion(
            finished_at, actual_s / predicted_s, delay if math.isnan(delay) else max(0.0, delay), trip,
            started_at, actual_s, placed.node, placed.task, placed.idle))
        return error

    def ended(self, key: str) -> None:
        """The task ended without completing: its prediction is dropped."""
        self.placements.pop(key, None)

    def measured(self, since_unix_s: float | None = None,
                 profiles: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> dict[str, Measured]:
        """Per node, its spread (`service_cv` and `service_quantiles`) and `dispatch_s` over the
        completions that ended since `since_unix_s` (None: the last RUNNING_WINDOW); a node with
        fewer than MIN_SAMPLES of either is left out (the twin then runs its steps as the
        performance model says). With `profiles` (node -> [(from Unix s, speed)], the speed
        over time the export carries), a processor step's ratio is its service time over its
        work at the speed in force when it started (`spell_ratio`), as the twin replays it."""
        out = {}
        for node, history in self.history.items():
            rows: list[Completion] = []
            for row in reversed(history):  # newest first: a window is the history's end
                if row.ended < (since_unix_s if since_unix_s is not None else -math.inf) or (
                        since_unix_s is None and len(rows) >= self.window):
                    break
                rows.append(row)
            delays = [row.delay for row in rows if not math.isnan(row.delay)]
            trips = [row.trip for row in rows if not math.isnan(row.trip)]
            if len(rows) >= MIN_SAMPLES and len(delays) >= MIN_SAMPLES:
                trip = statistics.fmean(_trimmed(trips)) if len(trips) >= MIN_SAMPLES else 0.0
                dispatch, idle_dispatch = statistics.fmean(_trimmed(delays)) + trip, None
                # a step placed on the node idle starts sooner than one back to back, whose
                # previous step's completion reaches the control plane first: apart when both are seen
                apart = [[row.delay for row in rows if row.idle is kind and not math.isnan(row.delay)]
                         for kind in (False, True)]
                if min(len(a) for a in apart) >= MIN_SAMPLES:
                    dispatch, idle_dispatch = (statistics.fmean(_trimmed(a)) + trip for a in apart)
                profile = (profiles or {}).get(node) or ()
                ratios = [spell_ratio(row, profile) for row in rows]
                warm, wake = measured_wake(rows, ratios)
                # the spread is around each step's level: an idle start's wake is not spread
                spread = [r * (1.0 - wake / row.actual_s)
                          if row.idle and row.burns and wake < row.actual_s else r
                          for row, r in zip(rows, ratios, strict=True)]
                out[node] = Measured(measured_spread(spread), dispatch, measured_quantiles(spread), wake, warm,
                                     idle_dispatch)
        return out

    def figure(self, node: str | None = None) -> ShadowFigure:
        if node is None:
            return _figure(self.errors)
        return _figure(self.by_node.get(node, deque()))
