"""Where twin runs execute: in this process, in local worker processes, or on a Ray cluster.

One interface (`RunExecutor.map`) serves `heddle sim` comparisons, `heddle sweep` and the
advisor's replays (all through `heddle.sim.run_many`). Every executor runs the same
`simulate()` on the same inputs, so the numbers do not depend on which one ran them; only
`wall_s` does. A failing run becomes an `Outcome` with its error and never stops the others.
"""

from __future__ import annotations

import os
import sys
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


class RunExecutor(Protocol):
    """Runs `RunSpec`s; outcomes come back in the order of the specs."""

    name: str

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]: ...


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


def run_one(spec: Any) -> Any:
    """Run one spec in this process (the function every executor ships to its workers).

    Shared inputs come as tokens of a local worker's `_WORKER_INPUTS` or as Ray object-store
    references (Ray resolves references only as top-level arguments), fetched here."""
    from heddle.sim.runner import run_spec

    ray = sys.modules.get("ray")
    fetched = {}
    for f in SHARED_FIELDS:
        value = getattr(spec, f)
        if isinstance(value, _Shared):
            fetched[f] = _WORKER_INPUTS[value.token]
        elif ray is not None and isinstance(value, ray.ObjectRef):
            fetched[f] = ray.get(value)
    return run_spec(replace(spec, **fetched) if fetched else spec)


def _failed(k: int, exc: BaseException) -> Outcome:
    return Outcome(k, error=_describe(exc), exception=exc)


class SerialExecutor:
    """Every run in this process, one after another (the baseline, and the 1-run case)."""

    name = "serial"

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]:
        out = []
        for k, spec in enumerate(specs):
            try:
                outcome = Outcome(k, result=run_one(spec))
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

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]:
        if len(specs) <= 1:
            return SerialExecutor().map(specs, on_outcome)
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
                    futures[pool.submit(run_one, s)] = k
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    outcome = Outcome(k, result=fut.result())
                except Exception as exc:  # noqa: BLE001 - reported per run
                    outcome = _failed(k, exc)
                finish(outcome)
        return [o for o in outcomes if o is not None]


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
        try:
            import ray
        except ImportError as exc:
            raise SimError("Ray is not installed: install heddle with the `ray` extra "
                           "(pip install 'heddle[ray]' or uv sync --extra ray)") from exc
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address == "local":
                ray.init(num_cpus=num_cpus, **kwargs)
            elif address == "auto":
                try:
                    ray.init(address="auto", **kwargs)
                except (ConnectionError, RuntimeError):
                    ray.init(num_cpus=num_cpus, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        self._remote = ray.remote(run_one)

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]:
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
                pending[self._remote.remote(s)] = k
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
