"""Where twin runs execute: in this process, in local worker processes, or on a Ray cluster.

One interface (`RunExecutor.map`) serves `heddle sim` comparisons, `heddle sweep` and the
advisor's replays (all through `heddle.sim.run_many`). Every executor runs the same
`simulate()` on the same inputs, so the numbers do not depend on which one ran them; only
`wall_s` does. A failing run becomes an `Outcome` with its error and never stops the others.
A caller that needs only part of each result says so with `keep` (a sweep keeps the summary):
it is taken where the run ran, and only that travels back, not the run's per-task records
(~4 MB pickled for a 14-day replay: ~2% of the run's CPU to ship).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from heddle.sim.errors import SimError

__all__ = [
    "LocalExecutor",
    "Outcome",
    "RayExecutor",
    "RunExecutor",
    "SerialExecutor",
    "make_executor",
    "share_inputs",
    "summary_of",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of spec number `index`: a result, or the error that ended it."""

    index: int
    result: Any = None  # SimResult
    error: str = ""  # "ErrorType: message" when the run failed
    exception: BaseException | None = None  # the error itself, when it ran in this machine's processes

    @property
    def ok(self) -> bool:
        return not self.error


OnOutcome = Callable[[Outcome], None]
Keep = Callable[[Any], Any]
"""What of a SimResult to send back: a module-level function (it is pickled by name)."""


class RunExecutor(Protocol):
    """Runs `RunSpec`s; outcomes come back in the order of the specs, each result the
    SimResult or, given `keep`, `keep(SimResult)`."""

    name: str

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None, *,
            keep: Keep | None = None) -> list[Outcome]: ...


def summary_of(result: Any) -> Any:
    """A run's SimSummary alone (the `keep` of a sweep)."""
    return result.summary


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


SHARED_FIELDS = ("fleet", "trace", "scenario")
"""The inputs many runs of a sweep or comparison share: shipped to a worker once, not per run."""

_WORKER_INPUTS: dict[int, Any] = {}
"""In a local worker process: the shared inputs, by token (set once by the pool's initializer)."""


@dataclass(frozen=True, slots=True)
class _Shared:
    """Stands in a spec for a shared input held by the worker (`_WORKER_INPUTS`)."""

    token: int


def _install_inputs(inputs: dict[int, Any]) -> None:
    """A local worker's initializer: keep the inputs every run it gets will share."""
    _WORKER_INPUTS.clear()
    _WORKER_INPUTS.update(inputs)


def share_inputs(specs: Sequence[Any], put: Callable[[Any], Any],
                 load: Sequence[str]) -> list[Any]:
    """Each spec with its fleet/trace/scenario replaced by `put(value)`, called once per
    distinct input; inputs given by path in a field of `load` are read here first, once.

    A spec whose input cannot be read becomes the exception instead (its run fails alone)."""
    from heddle.models.fleet import load_fleet
    from heddle.sim.scenario import load_scenario
    from heddle.traces import read_trace

    loaders = {"fleet": load_fleet, "trace": read_trace, "scenario": load_scenario}
    handles: dict[tuple[str, Any], Any] = {}

    def handle(field: str, value: Any) -> Any:
        is_path = isinstance(value, (str, Path))
        if value is None or (is_path and field not in load):
            return value
        key = (field, str(Path(value).resolve()) if is_path else id(value))
        if key not in handles:
            try:
                handles[key] = put(loaders[field](value) if is_path else value)
            except Exception as exc:  # noqa: BLE001 - fails the runs that use this input only
                handles[key] = exc
        return handles[key]

    out: list[Any] = []
    for spec in specs:
        values = {f: handle(f, getattr(spec, f)) for f in SHARED_FIELDS}
        failed = next((v for v in values.values() if isinstance(v, BaseException)), None)
        out.append(failed if failed is not None else replace(spec, **values))
    return out


def run_one(spec: Any, keep: Keep | None = None) -> Any:
    """Run one spec in this process (the function every executor ships to its workers).

    Shared inputs may come as tokens of a local worker's `_WORKER_INPUTS`."""
    from heddle.sim.runner import run_spec

    fetched = {f: _WORKER_INPUTS[v.token] for f in SHARED_FIELDS
               if isinstance(v := getattr(spec, f), _Shared)}
    result = run_spec(replace(spec, **fetched) if fetched else spec)
    return keep(result) if keep is not None else result


def _run_on_ray(spec: Any, keep: Keep | None, *inputs: Any) -> Any:
    """A Ray task: the shared inputs (SHARED_FIELDS, in order) arrive as top-level arguments,
    which Ray resolves from its object store before the task starts. A reference left inside
    the spec would make the worker a borrower of it, with messages to the driver about it on
    every run."""
    return run_one(replace(spec, **dict(zip(SHARED_FIELDS, inputs, strict=True))), keep)


def _failed(k: int, exc: BaseException) -> Outcome:
    return Outcome(k, error=_describe(exc), exception=exc)


class SerialExecutor:
    """Every run in this process, one after another (the baseline, and the 1-run case)."""

    name = "serial"

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None, *,
            keep: Keep | None = None) -> list[Outcome]:
        out = []
        for k, spec in enumerate(specs):
            try:
                outcome = Outcome(k, result=run_one(spec, keep))
            except Exception as exc:  # noqa: BLE001 - reported per run; the sweep goes on
                outcome = _failed(k, exc)
            out.append(outcome)
            if on_outcome:
                on_outcome(outcome)
        return out


class LocalExecutor:
    """Local worker processes (`max_workers`, default: one per core); a single run stays in
    this process (no pool start-up cost).

    Fleets and traces are read here once and handed to each worker once, by the pool's
    initializer: a run's own message to its worker is then a few hundred bytes, whatever the
    size of the trace it replays."""

    name = "local"

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None, *,
            keep: Keep | None = None) -> list[Outcome]:
        if len(specs) <= 1:
            return SerialExecutor().map(specs, on_outcome, keep=keep)
        inputs: dict[int, Any] = {}

        def put(value: Any) -> _Shared:
            inputs[len(inputs)] = value
            return _Shared(len(inputs) - 1)

        shared = share_inputs(specs, put, load=("fleet", "trace"))
        workers = self.max_workers or min(len(specs), os.cpu_count() or 2)
        outcomes: list[Outcome | None] = [None] * len(specs)

        def finish(outcome: Outcome) -> None:
            outcomes[outcome.index] = outcome
            if on_outcome:
                on_outcome(outcome)

        with ProcessPoolExecutor(max_workers=workers, initializer=_install_inputs,
                                 initargs=(inputs,)) as pool:
            futures = {}
            for k, s in enumerate(shared):
                if isinstance(s, BaseException):
                    finish(_failed(k, s))
                else:
                    futures[pool.submit(run_one, s, keep)] = k
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    outcome = Outcome(k, result=fut.result())
                except Exception as exc:  # noqa: BLE001 - reported per run
                    outcome = _failed(k, exc)
                finish(outcome)
        return [o for o in outcomes if o is not None]


LOCAL_START_ATTEMPTS = 2
"""Starts of a local Ray cluster before giving up. Ray's raylet aborts when its dashboard
agent has not written its port file ~15 s after it started (a fixed wait in Ray 2.60, not a
setting): on a 2-core machine at load 20-30 the agent's Python imports took longer in 5 of
124 local starts (raylet.out: "Timed out waiting for file .../metrics_agent_port_..."). A
second start finds the imports in the page cache."""


def _children() -> set[Any]:
    """This process's child processes, recursively (psutil.Process objects)."""
    import psutil

    return set(psutil.Process().children(recursive=True))


def _stop(processes: set[Any]) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(processes), timeout=10)


def _start_local(ray: Any, num_cpus: int | None, kwargs: dict[str, Any]) -> None:
    """Start a local Ray cluster that spends less CPU on itself: its processes share the
    cores with the runs (measured on 2 cores: ~40-55 ms of CPU per 1 s run, most of it in the
    raylet and the log monitor; docs/sweeps.md).

    No metrics are recorded (in every worker and the raylet, for a Prometheus nobody scrapes).
    The log monitor keeps running: stopping it saved ~10-15 ms of CPU per 1 s run (~1%) but
    only through Ray's private Node API, which is not worth a pinned Ray version. A cluster
    heddle joins keeps its own settings. A start that fails is cleaned up and tried again
    (LOCAL_START_ATTEMPTS); SimError if none succeeds."""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        before = _children()
        try:
            ray.init(num_cpus=num_cpus, _system_config={"enable_metrics_collection": False}, **kwargs)
            return
        except Exception as exc:  # (Ray raises a plain Exception when its node times out)
            ray.shutdown()
            _stop(_children() - before)  # what the failed start left running (Ray keeps no handle)
            if attempt == LOCAL_START_ATTEMPTS:
                raise SimError(f"a local Ray cluster did not start ({LOCAL_START_ATTEMPTS} tries; "
                               f"a busy machine slows its processes past Ray's start-up waits): "
                               f"{_describe(exc)}") from exc


class RayExecutor:
    """Runs on a Ray cluster (the optional `heddle[ray]` extra).

    `address`: "auto" joins a running cluster (or starts a local one when there is none),
    "local" always starts a local one, anything else is a cluster address. Fleets, traces
    and scenarios named by path are loaded here once and put in Ray's object store once, so
    each node fetches them once however many runs use them (and needs none of the files).
    """

    name = "ray"

    def __init__(self, address: str = "auto", *, num_cpus: int | None = None):
        # a local cluster's workers run this interpreter: Ray need not package the working
        # directory as it does by default under `uv run` (read when ray is imported)
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        # no usage report: heddle makes no network calls of its own (read by ray.init)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError as exc:
            raise SimError("Ray is not installed: install heddle with the `ray` extra "
                           "(pip install 'heddle[ray]' or uv sync --extra ray)") from exc
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address == "local":
                _start_local(ray, num_cpus, kwargs)
            elif address == "auto":
                try:
                    ray.init(address="auto", **kwargs)
                except (ConnectionError, RuntimeError):
                    _start_local(ray, num_cpus, kwargs)
            else:
                ray.init(address=address, **kwargs)
        # no task events: Ray's state API and dashboard would record each run's progress
        # through the GCS; a sweep reports its own
        self._remote = ray.remote(enable_task_events=False)(_run_on_ray)

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None, *,
            keep: Keep | None = None) -> list[Outcome]:
        ray = self._ray
        shared = share_inputs(specs, ray.put, load=SHARED_FIELDS)
        outcomes: list[Outcome | None] = [None] * len(specs)

        def finish(outcome: Outcome) -> None:
            outcomes[outcome.index] = outcome
            if on_outcome:
                on_outcome(outcome)

        pending = {}
        for k, s in enumerate(shared):
            if isinstance(s, BaseException):
                finish(_failed(k, s))
            else:
                inputs = [getattr(s, f) for f in SHARED_FIELDS]
                bare = replace(s, **dict.fromkeys(SHARED_FIELDS))
                pending[self._remote.remote(bare, keep, *inputs)] = k
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for obj in done:
                k = pending.pop(obj)
                try:
                    outcome = Outcome(k, result=ray.get(obj))
                except Exception as exc:  # noqa: BLE001 - reported per run
                    cause = getattr(exc, "cause", None) or exc
                    outcome = Outcome(k, error=_describe(cause))
                finish(outcome)
        return [o for o in outcomes if o is not None]


def make_executor(kind: str | None = None, *, workers: int | None = None,
                  ray_address: str | None = None) -> RunExecutor:
    """The executor a command asked for: "serial", "local" (default) or Ray (`ray_address`)."""
    if ray_address:
        return RayExecutor(ray_address, num_cpus=workers)
    if kind in (None, "local"):
        return LocalExecutor(workers)
    if kind == "serial":
        return SerialExecutor()
    raise SimError(f"unknown executor {kind!r}; expected serial, local or a --ray address")
