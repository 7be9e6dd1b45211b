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


def run_one(spec: Any) -> Any:
    """Run one spec in this process (the function every executor ships to its workers).

    On a Ray worker the spec's fleet/trace/scenario may be object-store references (Ray
    resolves references only as top-level arguments): they are fetched from the node's store."""
    from heddle.sim.runner import run_spec

    ray = sys.modules.get("ray")
    if ray is not None:
        fetched = {f: ray.get(getattr(spec, f)) for f in ("fleet", "trace", "scenario")
                   if isinstance(getattr(spec, f), ray.ObjectRef)}
        if fetched:
            spec = replace(spec, **fetched)
    return run_spec(spec)


class SerialExecutor:
    """Every run in this process, one after another (the baseline, and the 1-run case)."""

    name = "serial"

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]:
        out = []
        for k, spec in enumerate(specs):
            try:
                outcome = Outcome(k, result=run_one(spec))
            except Exception as exc:  # noqa: BLE001 - reported per run; the sweep goes on
                outcome = Outcome(k, error=_describe(exc), exception=exc)
            out.append(outcome)
            if on_outcome:
                on_outcome(outcome)
        return out


class LocalExecutor:
    """Local worker processes (`max_workers`, default: one per core); a single run stays in
    this process (no pool start-up cost)."""

    name = "local"

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]:
        if len(specs) <= 1:
            return SerialExecutor().map(specs, on_outcome)
        workers = self.max_workers or min(len(specs), os.cpu_count() or 2)
        outcomes: list[Outcome | None] = [None] * len(specs)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_one, s): k for k, s in enumerate(specs)}
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    outcome = Outcome(k, result=fut.result())
                except Exception as exc:  # noqa: BLE001 - reported per run
                    outcome = Outcome(k, error=_describe(exc), exception=exc)
                outcomes[k] = outcome
                if on_outcome:
                    on_outcome(outcome)
        return [o for o in outcomes if o is not None]


class RayExecutor:
    """Runs on a Ray cluster (the optional `heddle[ray]` extra).

    `address`: "auto" joins a running cluster (or starts a local one when there is none),
    "local" always starts a local one, anything else is a cluster address. Fleets, traces
    and scenarios named by path are loaded here once and put in Ray's object store once, so
    each node fetches them once however many runs use them.
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

    def _shared(self, specs: Sequence[Any]) -> list[Any]:
        """Specs whose fleet/trace/scenario are object-store references, one per input."""
        from heddle.models.fleet import load_fleet
        from heddle.sim.scenario import load_scenario
        from heddle.traces import read_trace

        loaders = {"fleet": load_fleet, "trace": read_trace, "scenario": load_scenario}
        refs: dict[tuple[str, Any], Any] = {}

        def ref(field: str, value: Any) -> Any:
            if value is None:
                return None
            key = (field, str(Path(value).resolve()) if isinstance(value, (str, Path)) else id(value))
            if key not in refs:
                obj = loaders[field](value) if isinstance(value, (str, Path)) else value
                refs[key] = self._ray.put(obj)
            return refs[key]

        return [replace(s, fleet=ref("fleet", s.fleet), trace=ref("trace", s.trace),
                        scenario=ref("scenario", s.scenario)) for s in specs]

    def map(self, specs: Sequence[Any], on_outcome: OnOutcome | None = None) -> list[Outcome]:
        ray = self._ray
        shared = self._shared(specs)
        pending = {self._remote.remote(s): k for k, s in enumerate(shared)}
        outcomes: list[Outcome | None] = [None] * len(specs)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for obj in done:
                k = pending.pop(obj)
                try:
                    outcome = Outcome(k, result=ray.get(obj))
                except Exception as exc:  # noqa: BLE001 - reported per run
                    cause = getattr(exc, "cause", None) or exc
                    outcome = Outcome(k, error=_describe(cause))
                outcomes[k] = outcome
                if on_outcome:
                    on_outcome(outcome)
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
