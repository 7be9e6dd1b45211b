"""The twin's public entry points: `simulate()` for one run, `run_many()` for side-by-side runs
in parallel processes (what-if comparisons and advisor sweeps).

This is the composition root: it loads the fleet, workload and scenario, builds the `Twin`,
runs it, checks privacy on every record, and assembles the `SimResult`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heddle.models import Fleet, cost
from heddle.sim.engine import Twin, TwinSettings
from heddle.sim.errors import PrivacyViolationError, SimError
from heddle.sim.executors import LocalExecutor, Outcome, RunExecutor
from heddle.sim.express import ExpressTwin
from heddle.sim.fleet_events import FleetDynamics
from heddle.sim.metrics import queue_series, summarize, utilization_series
from heddle.sim.nodes import NodeRt
from heddle.sim.result import SimResult
from heddle.sim.scenario import Scenario, load_scenario
from heddle.sim.workload import Workload, as_workload

__all__ = ["RunSpec", "run_many", "run_spec", "simulate"]


def _fleet(fleet: Fleet | str | Path) -> Fleet:
    if isinstance(fleet, Fleet):
        return fleet
    from heddle.models.fleet import load_fleet  # the models package owns the fleet format

    return load_fleet(Path(fleet))


def _twin_policy(policy: Any) -> Any:
    """The policy with per-decision explanations off: the twin reads statuses, targets and
    reasons, never the explanation tables, and place() has a lean one-task path without them."""
    from heddle.optimizer import Policy, resolve_policy

    resolved = resolve_policy(policy) if isinstance(policy, (str, Policy)) else policy
    if isinstance(resolved, Policy) and resolved.explain:
        return replace(resolved, explain=False)
    return resolved


def _policy_name(policy: Any) -> str:
    return policy if isinstance(policy, str) else getattr(policy, "name", type(policy).__name__)


GC_YOUNG_THRESHOLD = 50_000
"""Net allocations of container objects between young-generation collections during a run
(CPython's default is 700)."""


@contextmanager
def _collector_for_a_run() -> Iterator[None]:
    """Keep CPython's cycle collector from rescanning the twin's long-lived data on every pass.

    A run allocates and frees millions of small objects, which trips full collections that
    visit every element of the workload's per-task lists: ~2 s of a 1,000,000-request run
    (11%). Inside this block the heap that exists when the run starts (workload, fleet,
    catalogs) is frozen (`gc.freeze`: not scanned, still freed by reference counting) and young
    collections wait for `GC_YOUNG_THRESHOLD` net allocations; both are undone on exit. A run
    creates no reference cycles in the common path, so memory stays the same. Left alone when
    the process already manages the collector (disabled, or objects frozen by someone else).
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], GC_YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def simulate(
    fleet: Fleet | str | Path,
    trace_or_tasks: Any,
    policy: Any = "optimal",
    scenario: Scenario | str | Path | None = None,
    seed: int = 0,
    horizon_s: float | None = None,
    *,
    batch_window_s: float | None = None,
    settings: TwinSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Replay a workload on a fleet through `optimizer.place()` and report what happened.

    `trace_or_tasks`: a `heddle.traces.Trace`, a trace DataFrame, a trace file path, an
    iterable of `Task`s, or a prepared `Workload`. `batch_window_s` (default: the policy's
    `batch_window_s` if it has one, else 0) > 0 collects arrivals and places them together
    every window; 0 places each arrival at once. `horizon_s` stops the clock early (tasks not
    finished are `in_flight`). Raises `PrivacyViolationError` if any record breaks privacy.
    """
    wall0 = time.perf_counter()
    policy = _twin_policy(policy)
    fleet = _fleet(fleet)
    workload = as_workload(trace_or_tasks)
    origin = "scenario"
    if isinstance(scenario, (str, Path)):
        origin = str(scenario)
        scenario = load_scenario(scenario)
    cfg = settings or TwinSettings()
    if batch_window_s is None:
        batch_window_s = float(getattr(policy, "batch_window_s", cfg.batch_window_s) or 0.0)
    if batch_window_s != cfg.batch_window_s:
        cfg = TwinSettings(**{**{f: getattr(cfg, f) for f in cfg.__slots__}, "batch_window_s": batch_window_s})
    rng = np.random.default_rng(seed)
    end_s = float(workload.arrival_s[-1]) if workload.n else 0.0
    dynamics = FleetDynamics(scenario, fleet, horizon_s or end_s, rng, origin) if scenario else None
    engine = ExpressTwin if cfg.express else Twin
    twin = engine(fleet, workload, policy, settings=cfg, dynamics=dynamics, rng=rng,
                  horizon_s=horizon_s, progress=progress)
    with _collector_for_a_run():
        twin.run()
    result = _assemble(twin, workload, _policy_name(policy), seed)
    result.summary.wall_s = time.perf_counter() - wall0
    result.summary.requests_per_wall_s = result.summary.arrived / max(result.summary.wall_s, 1e-9)
    return result


def _privacy_violations(df: pd.DataFrame, twin: Twin) -> list[str]:
    # masks select the few columns read (a mask over the whole frame would copy every column)
    bad = df.loc[(df["target_kind"] == "cloud") & (df["privacy"] != "public"), ["task_id", "privacy", "target"]]
    problems = [f"{r.task_id} ({r.privacy}) ran on cloud offer {r.target}" for r in bad.head(5).itertuples()]
    personal = df.loc[(df["target_kind"] == "node") & (df["privacy"] == "personal"), ["target", "owner"]]
    for (target, owner), g in personal.groupby(["target", "owner"]):
        node = twin.target_by_name[target].node
        if not node.may_hold_personal_of(owner or None):
            problems.append(f"{len(g)} personal task(s) of {owner!r} ran on {target} (owner {node.owner!r})")
    return problems


def _assemble(twin: Twin, workload: Workload, policy: str, seed: int) -> SimResult:
    arrived = twin.arrived_mask()
    df = twin.rec.frame(workload, twin.target_names(), arrived)
    problems = _privacy_violations(df, twin)
    if problems:
        raise PrivacyViolationError("privacy violated: " + "; ".join(problems))
    end = twin.run_end_s()
    nodes: list[NodeRt] = twin.nodes
    utilization, idle_kwh, idle_usd = {}, 0.0, 0.0
    for rt in nodes:
        present = rt.present_total_s(end)
        utilization[rt.node.id] = rt.busy_slot_s / (rt.node.slots * present) if present > 0 else 0.0
        kwh = cost.energy_kwh(rt.idle_w, present)
        idle_kwh += kwh
        idle_usd += kwh * rt.price_usd_per_kwh
    summary = summarize(
        df, fleet=twin.state.fleet.name, policy=policy, utilization=utilization,
        idle_energy_kwh=idle_kwh, idle_energy_usd=idle_usd, privacy_violations=0,
        model_loads={rt.node.id: rt.loads for rt in nodes},
        evictions={rt.node.id: rt.evictions for rt in nodes},
    )
    cloud = (df["target_kind"] == "cloud").to_numpy()
    accounts = np.array(workload.accounts, dtype=object)[workload.account_code[arrived][cloud]]
    summary.cloud_spend_by_account = {
        str(k): float(v) for k, v in df.loc[cloud, "cost_usd"].groupby(accounts).sum().items()
    }
    summary.place_calls = twin.place_calls
    summary.place_wall_s = twin.place_wall_s
    return SimResult(
        summary=summary, records=df, queue=queue_series(df),
        utilization=utilization_series(df, {rt.node.id: rt.node.slots for rt in nodes}),
        fleet_events=list(twin.dynamics.applied) if twin.dynamics else [], seed=seed,
    )


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of a side-by-side comparison (everything picklable for a worker process)."""

    fleet: Any  # Fleet or fleet YAML path
    trace: Any  # trace path, DataFrame, Trace, or list of Tasks
    policy: Any = "optimal"
    scenario: Any = None
    seed: int = 0
    horizon_s: float | None = None
    batch_window_s: float | None = None
    label: str = ""
    options: dict = field(default_factory=dict)  # extra TwinSettings fields


def run_spec(spec: RunSpec) -> SimResult:
    """Run one spec in this process."""
    settings = TwinSettings(**spec.options) if spec.options else None
    return simulate(spec.fleet, spec.trace, spec.policy, spec.scenario, spec.seed, spec.horizon_s,
                    batch_window_s=spec.batch_window_s, settings=settings)


def run_many(specs: Sequence[RunSpec], *, max_workers: int | None = None,
             on_done: Callable[[int, SimResult], None] | None = None,
             executor: RunExecutor | None = None) -> list[SimResult]:
    """Run several simulations (local processes unless `executor` says otherwise); results in
    the order of `specs`.

    A failing run raises its error after the others finish, so one bad fleet does not hide the
    rest's results from the caller (`executor.map` gives every outcome, failures included).
    """
    executor = executor or LocalExecutor(max_workers)

    def done(outcome: Outcome) -> None:
        if outcome.ok and on_done:
            on_done(outcome.index, outcome.result)

    outcomes = executor.map(specs, done)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        first = failed[0]
        if isinstance(first.exception, SimError):
            raise first.exception
        raise SimError(first.error) from first.exception
    return [o.result for o in outcomes]
