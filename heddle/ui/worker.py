"""One background run of the UI (a what-if or an advice report) in its own process.

``python -m heddle.ui.worker SPEC.json`` reads the run's spec, prints one JSON line per step
(``{"progress": 0.4, "message": "..."}``), writes everything it made (charts, tables, the
report) into the spec's ``out`` folder with ``result.json`` last, and exits 0; on a bad
input or a failed run it prints ``{"error": "..."}`` and exits 1. A process of its own keeps
the twin's CPU work off the web server (and away from its threads when it forks workers).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_advice", "run_whatif"]


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf (a class with nothing completed has no p95): null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _finite(value.item())
    return value


def run_whatif(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Every (fleet, policy) pair on the trace; a comparison table and each run's charts."""
    from heddle.sim.plots import write_plots
    from heddle.sim.whatif import comparison_table, safe_dir_name, what_if

    fleets, policies = spec["fleets"], spec["policies"]
    n = len(fleets) * len(policies)
    say(progress=0.0, message=f"replaying the work on {n} setup{'s' if n > 1 else ''}")

    def arrivals(done: int, total: int) -> None:
        if total and (done == total or done % max(1, total // 50) == 0):
            say(progress=0.9 * done / total, message=f"replayed {done:,} of {total:,} requests")

    def finished(k: int, total: int, label: str) -> None:
        say(progress=0.9 * (k + 1) / total, message=f"finished {label} ({k + 1} of {total})")

    runs = what_if(fleets, spec["trace"], policies, scenario=spec.get("scenario"), seed=spec.get("seed", 0),
                   progress=arrivals, on_done=finished)
    say(progress=0.92, message="drawing the charts")
    table = [{k: _finite(v) for k, v in row.items()} for row in comparison_table(runs).to_dict("records")]
    out_runs = []
    for run in runs:
        folder = out / safe_dir_name(run.label)
        folder.mkdir(parents=True, exist_ok=True)
        charts = [p.name for p in write_plots(run.result, folder)]
        s = run.result.summary
        out_runs.append({"label": run.label, "folder": folder.name, "charts": charts,
                         "fleet": s.fleet, "policy": s.policy,
                         "rejected_reasons": dict(sorted(s.rejected_reasons.items(), key=lambda kv: -kv[1])[:5])})
    return {"table": table, "runs": out_runs}


def run_advice(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The advisor's report (the same files `heddle advise` writes) for a fleet and a trace."""
    from heddle.advisor import AdvisorSettings, advise
    from heddle.advisor.report import write_report
    from heddle.models.fleet import load_fleet
    from heddle.sim.whatif import resolve_fleet, resolve_trace

    say(progress=0.0, message="reading the fleet and the work")
    fleet = load_fleet(resolve_fleet(spec["fleet"]))
    steps = {"analysing": 0.05, "current fleet": 0.15, "screening": 0.35, "candidate": 0.45}
    # how far along each of the advisor's progress messages is (its replays take most of it)

    def progress(msg: str) -> None:
        share = next((v for k, v in steps.items() if k in msg), None)
        say(progress=share, message=msg)

    report = advise(resolve_trace(spec["trace"]), fleet, AdvisorSettings(seed=spec.get("seed", 0)),
                    progress=progress)
    say(progress=0.97, message="writing the report")
    write_report(report, out, force=True)
    return {"sentence": report.sentence, "fleet": report.fleet_name, "trace": report.trace_label}


RUNNERS = {"whatif": run_whatif, "advice": run_advice}


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = RUNNERS[spec["kind"]](spec, out)
    except Exception as exc:  # noqa: BLE001 - every failure is shown to the user, worded by its package
        say(error=str(exc) or type(exc).__name__)
        return 1
    (out / "result.json").write_text(json.dumps(result), encoding="utf-8")
    say(progress=1.0, message="done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
