"""What-if sweeps: a grid (or list) of twin runs from one YAML spec, one table of results.

A sweep expands its spec into runs (fleet x trace x policy x scenario x growth x electricity
price x seed), runs them on an executor (local processes or Ray, `heddle.sim.executors`) and
collects each run's summary into one table whose columns are the run's parameters and its
metrics. Each finished run is stored under `<out>/runs/<key>.json`, where the key hashes the
run's inputs (file contents, not names) and heddle's version, so re-running a sweep skips what
is done and an interrupted sweep resumes. A failing run is reported and retried next time;
it never stops the others.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.sim.errors import SimError
from heddle.sim.executors import LocalExecutor, Outcome, RunExecutor, summary_of
from heddle.sim.runner import RunSpec
from heddle.sim.whatif import resolve_fleet, resolve_scenario, resolve_trace, summary_row

__all__ = ["SweepResult", "SweepRun", "SweepSpec", "expand", "load_sweep_spec", "run_sweep"]

Positive = Annotated[float, Field(gt=0)]


class SweepEntry(BaseModel):
    """One run of a `runs:` list (a key left out takes the spec's first value)."""

    model_config = ConfigDict(extra="forbid")
    fleet: str | None = None
    trace: str | None = None
    policy: str | None = None
    scenario: str | None = None
    growth: Positive | None = None
    electricity_price: Positive | None = None
    seed: int | None = None


class SweepSpec(BaseModel):
    """The sweep file (docs/twin.md, "Sweeps"). Paths are relative to the file."""

    model_config = ConfigDict(extra="forbid")
    name: str = "sweep"
    fleets: list[str] = Field(min_length=1)
    traces: list[str] = Field(default_factory=lambda: ["demo"], min_length=1)
    policies: list[str] = Field(default_factory=lambda: ["optimal"], min_length=1)
    scenarios: list[str | None] = Field(default_factory=lambda: [None], min_length=1)
    growth: list[Positive] = Field(default_factory=lambda: [1.0], min_length=1)
    electricity_price: list[Positive] = Field(default_factory=lambda: [1.0], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    horizon_s: Positive | None = None
    runs: list[SweepEntry] | None = None  # a list of runs instead of the grid


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One point of the sweep. `growth` multiplies the arrival rate (arrivals compressed in
    time); `electricity_price` multiplies every electricity price of the fleet."""

    fleet: str
    trace: str
    policy: str
    scenario: str | None
    growth: float
    electricity_price: float
    seed: int

    def params(self) -> dict[str, Any]:
        return {"fleet": Path(self.fleet).stem, "trace": _trace_stem(self.trace), "policy": self.policy,
                "scenario": Path(self.scenario).stem if self.scenario else "", "growth": self.growth,
                "electricity_price": self.electricity_price, "seed": self.seed}


def _trace_stem(trace: str) -> str:
    name = Path(trace).name
    for suffix in (".synth.yaml", ".htr.gz", ".htr", ".parquet", ".yaml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; errors name the file and the field."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SimError(f"{path}: cannot read the sweep file ({exc})") from None
    except yaml.YAMLError as exc:
        raise SimError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise SimError(f"{path}: expected a mapping with at least `fleets:`, got {type(doc).__name__}")
    try:
        spec = SweepSpec.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SimError(f"{path}: field '{where}': {first['msg']}") from None
    return _relative_to(spec, path.parent)


def _relative_to(spec: SweepSpec, base: Path) -> SweepSpec:
    """Spec values that name files next to the spec become paths; shipped names stay names."""

    def fix(value: str | None) -> str | None:
        if value is None or Path(value).is_absolute():
            return value
        candidate = base / value
        return str(candidate) if candidate.exists() else value

    runs = None if spec.runs is None else [
        e.model_copy(update={k: fix(getattr(e, k)) for k in ("fleet", "trace", "scenario")}) for e in spec.runs]
    return spec.model_copy(update={
        "fleets": [fix(f) for f in spec.fleets], "traces": [fix(t) for t in spec.traces],
        "scenarios": [fix(s) for s in spec.scenarios], "runs": runs})


def expand(spec: SweepSpec) -> list[SweepRun]:
    """Every run of the spec, in a stable order (the grid's, or the list's)."""
    if spec.runs is not None:
        first = {"fleet": spec.fleets[0], "trace": spec.traces[0], "policy": spec.policies[0],
                 "scenario": spec.scenarios[0], "growth": spec.growth[0],
                 "electricity_price": spec.electricity_price[0], "seed": spec.seeds[0]}
        return [SweepRun(**{k: v if (v := getattr(e, k)) is not None else first[k] for k in first})
                for e in spec.runs]
    grid = itertools.product(spec.fleets, spec.traces, spec.policies, spec.scenarios, spec.growth,
                             spec.electricity_price, spec.seeds)
    return [SweepRun(*point) for point in grid]


def _heddle_version() -> str:
    try:
        return version("heddle")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


class _Inputs:
    """Loads each distinct input once and hashes file contents for the run keys."""

    def __init__(self, horizon_s: float | None):
        self.horizon_s = horizon_s
        self._cache: dict[tuple, Any] = {}

    def _once(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def digest(self, path: Path) -> str:
        return self._once(("digest", str(path)), lambda: hashlib.sha256(path.read_bytes()).hexdigest())

    def fleet(self, name: str, price: float) -> Any:
        path = resolve_fleet(name)
        if price == 1.0:
            return path

        def scaled():
            from heddle.models.fleet import load_fleet

            fleet = load_fleet(path)
            nodes = tuple(replace(n, electricity_usd_per_kwh=n.electricity_usd_per_kwh * price)
                          for n in fleet.nodes)
            return replace(fleet, nodes=nodes, electricity_usd_per_kwh=fleet.electricity_usd_per_kwh * price)

        return self._once(("fleet", str(path), price), scaled)

    def trace_path(self, name: str) -> Path:
        path = Path(name)
        if name.endswith(".synth.yaml"):
            if not path.exists():
                raise SimError(f"synthetic-trace config {name!r} does not exist")
            return path
        return resolve_trace(name)

    def trace(self, name: str, growth: float) -> Any:
        path = self.trace_path(name)
        if growth == 1.0 and not name.endswith(".synth.yaml"):
            return path

        def load():
            from heddle import traces

            if name.endswith(".synth.yaml"):
                import yaml

                config = traces.SynthConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
                trace = traces.synthesize(config)
            else:
                trace = traces.read_trace(path)
            if growth != 1.0:
                df = trace.df.copy()
                df["arrival_s"] = df["arrival_s"].to_numpy() / growth
                trace = traces.Trace(df, dict(trace.meta))
            return trace

        return self._once(("trace", str(path), growth), load)

    def key(self, run: SweepRun) -> str:
        """A hash of everything that decides the run's numbers."""
        parts = {**run.params(), "fleet": self.digest(resolve_fleet(run.fleet)),
                 "trace": self.digest(self.trace_path(run.trace)),
                 "scenario": self.digest(resolve_scenario(run.scenario)) if run.scenario else "",
                 "horizon_s": self.horizon_s, "heddle": _heddle_version()}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]

    def spec(self, run: SweepRun, key: str) -> RunSpec:
        return RunSpec(fleet=self.fleet(run.fleet, run.electricity_price), trace=self.trace(run.trace, run.growth),
                       policy=run.policy, scenario=resolve_scenario(run.scenario) if run.scenario else None,
                       seed=run.seed, horizon_s=self.horizon_s, label=key)


@dataclass(slots=True)
class SweepResult:
    table: pd.DataFrame  # one row per finished run: parameters, then metrics
    failures: pd.DataFrame  # one row per failed run: parameters and the error
    ran: int  # runs executed now
    reused: int  # runs whose results were already on disk


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, executor: RunExecutor | None = None,
              on_progress: Callable[[int, int, int], None] | None = None) -> SweepResult:
    """Run every run of `spec` not already done under `out_dir`; write `results.csv` (and the
    same table as `results.parquet`), `failures.csv` and `comparison.png` there.
    `on_progress(done, failed, total)`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SimError(f"{out}: exists and is not a directory; expected an output folder")
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    inputs = _Inputs(spec.horizon_s)
    runs = expand(spec)
    rows: dict[int, dict] = {}
    failures: list[dict] = []
    todo: list[tuple[int, SweepRun, str]] = []
    for k, run in enumerate(runs):
        try:
            key = inputs.key(run)
        except Exception as exc:  # noqa: BLE001 - a missing or unreadable input fails its runs only
            failures.append({**run.params(), "error": f"{type(exc).__name__}: {exc}"})
            continue
        stored = runs_dir / f"{key}.json"
        if stored.exists():
            rows[k] = json.loads(stored.read_text(encoding="utf-8"))
        else:
            todo.append((k, run, key))
    reused = len(rows)
    total = len(runs)
    if on_progress:
        on_progress(reused, len(failures), total)
    specs, ready = [], []
    for k, run, key in todo:
        try:
            specs.append(inputs.spec(run, key))
            ready.append((k, run, key))
        except Exception as exc:  # noqa: BLE001 - a bad input fails its runs only
            failures.append({**run.params(), "error": f"{type(exc).__name__}: {exc}"})

    def done(outcome: Outcome) -> None:
        k, run, key = ready[outcome.index]
        if outcome.ok:
            row = {**run.params(), "key": key, **summary_row(outcome.result)}
            (runs_dir / f"{key}.json").write_text(json.dumps(row, default=_json_default), encoding="utf-8")
            rows[k] = row
        else:
            failures.append({**run.params(), "error": outcome.error})
        if on_progress:
            on_progress(len(rows), len(failures), total)

    (executor or LocalExecutor()).map(specs, done, keep=summary_of)  # the table needs no records
    table = pd.DataFrame([rows[k] for k in sorted(rows)])
    fail_df = pd.DataFrame(failures, columns=[*SweepRun.__slots__, "error"] if not failures else None)
    table.to_csv(out / "results.csv", index=False)
    table.to_parquet(out / "results.parquet", index=False)  # typed columns, for pandas/DuckDB/polars
    fail_df.to_csv(out / "failures.csv", index=False)
    if len(table):
        comparison_chart(table, out / "comparison.png", title=spec.name)
    return SweepResult(table, fail_df, ran=len(specs), reused=reused)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a sweep result")


def comparison_chart(table: pd.DataFrame, path: Path, *, title: str) -> None:
    """Two panels, one point per run (colour = fleet, marker = policy): cost against p95
    latency, and cost against the share of work not done (rejected or failed). Runs differing
    in other parameters are labelled with them when there are few enough to read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.copy()
    t["cost_usd"] = t["cloud_spend_usd"] + t["energy_cost_usd"]
    arrived = (t["completed"] + t["rejected"] + t["failed"]).clip(lower=1)
    t["not_done"] = (t["rejected"] + t["failed"]) / arrived
    others = [c for c in ("trace", "scenario", "growth", "electricity_price", "seed") if t[c].nunique() > 1]
    short = {"trace": "", "scenario": "", "growth": "growth x", "electricity_price": "price x", "seed": "seed "}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    markers = "os^Dvx+*"
    policies = sorted(t["policy"].unique())
    for ax, (x, xlabel) in zip(axes, [("latency_p95_s", "p95 latency (s)"),
                                      ("not_done", "share of work rejected or failed")]):
        for fi, (fleet, group) in enumerate(t.groupby("fleet", sort=True)):
            for pi, policy in enumerate(policies):
                g = group[group["policy"] == policy]
                if len(g):
                    ax.scatter(g[x], g["cost_usd"], color=f"C{fi % 10}", marker=markers[pi % len(markers)],
                               s=45, alpha=0.8, label=f"{fleet} / {policy}")
        if others and len(t) <= 30:
            for row in t.to_dict("records"):
                text = ", ".join(f"{short[c]}{row[c]:g}" if isinstance(row[c], float) else f"{short[c]}{row[c]}"
                                 for c in others)
                ax.annotate(text, (row[x], row["cost_usd"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        positive = t[x][t[x] > 0]
        if x == "latency_p95_s" and len(positive) and positive.max() / positive.min() > 20:
            ax.set_xscale("log")
        if x == "not_done":
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cloud + energy cost over the run (USD)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best", title="fleet / policy", title_fontsize=8)
    fig.suptitle(f"{title}: {len(t)} runs (lower left is better in both panels)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
