"""`heddle sweep`: a grid of twin runs, one table, failures reported, resumable, same numbers
on every executor (local processes, this process, a real local Ray cluster)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from heddle.sim import SimError
from heddle.sim.executors import LocalExecutor, SerialExecutor
from heddle.sim.sweep import expand, load_sweep_spec, run_sweep

HORIZON_S = 900.0  # the first quarter hour of the demo trace: a few hundred requests per run


def _spec(tmp_path: Path, **fields) -> Path:
    doc = {"name": "test sweep", "fleets": ["demo", "small"], "traces": ["demo"],
           "policies": ["optimal", "least-loaded"], "horizon_s": HORIZON_S, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    """The table without what depends on the machine (wall time) and with a stable order."""
    return table.drop(columns=["wall_s"]).sort_values("key").reset_index(drop=True)


def test_grid_runs_every_point_and_tabulates_parameters_and_metrics(tmp_path):
    spec = load_sweep_spec(_spec(tmp_path, growth=[1.0, 2.0]))
    assert len(expand(spec)) == 8
    result = run_sweep(spec, tmp_path / "out", executor=LocalExecutor(2))
    t = result.table
    assert len(t) == 8 and result.failures.empty
    assert {"fleet", "policy", "growth", "seed", "latency_p95_s", "cloud_spend_usd"} <= set(t.columns)
    assert set(t["fleet"]) == {"demo", "small"} and set(t["policy"]) == {"optimal", "least-loaded"}
    assert (t["privacy_violations"] == 0).all()
    # twice the arrival rate: more requests arrive within the same horizon
    arrived = t.assign(n=t["completed"] + t["rejected"] + t["failed"]).groupby("growth")["n"].sum()
    assert arrived[2.0] > arrived[1.0] * 1.5
    on_disk = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(on_disk) == 8
    typed = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(typed.columns) == list(on_disk.columns) and typed["growth"].tolist() == on_disk["growth"].tolist()
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 10_000


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nnodes:\n  - id: x\n    device: no-such-chip\n    memory_gb: 8\n    owner: x\n", encoding="utf-8")
    spec = load_sweep_spec(_spec(tmp_path, fleets=["demo", "broken.yaml"], policies=["optimal"]))
    result = run_sweep(spec, tmp_path / "out", executor=LocalExecutor(2))
    assert list(result.table["fleet"]) == ["demo"]
    assert len(result.failures) == 1
    assert result.failures.iloc[0]["fleet"] == "broken"
    assert "no-such-chip" in result.failures.iloc[0]["error"]


def test_rerun_skips_finished_runs_and_an_interrupted_sweep_resumes(tmp_path):
    spec = load_sweep_spec(_spec(tmp_path))
    seen = []

    def interrupt_after_two(done, failed, total):
        seen.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "out", executor=SerialExecutor(), on_progress=interrupt_after_two)
    resumed = run_sweep(spec, tmp_path / "out", executor=SerialExecutor())
    assert (resumed.reused, resumed.ran) == (2, 2)
    again = run_sweep(spec, tmp_path / "out", executor=SerialExecutor())
    assert (again.reused, again.ran) == (4, 0)
    pd.testing.assert_frame_equal(_numbers(again.table), _numbers(resumed.table))


def test_changed_input_file_is_run_again(tmp_path):
    fleet = tmp_path / "mine.yaml"
    fleet.write_text(Path(__file__).parents[2].joinpath("heddle/data/fleets/small.yaml").read_text(), encoding="utf-8")
    spec = load_sweep_spec(_spec(tmp_path, fleets=["mine.yaml"], policies=["optimal"]))
    first = run_sweep(spec, tmp_path / "out", executor=SerialExecutor())
    fleet.write_text(fleet.read_text().replace("slots: 1", "slots: 2"), encoding="utf-8")
    second = run_sweep(spec, tmp_path / "out", executor=SerialExecutor())
    assert (first.ran, second.ran, second.reused) == (1, 1, 0)


def test_executors_give_the_same_numbers(tmp_path):
    spec = load_sweep_spec(_spec(tmp_path, electricity_price=[1.0, 3.0], policies=["optimal"]))
    serial = run_sweep(spec, tmp_path / "a", executor=SerialExecutor())
    local = run_sweep(spec, tmp_path / "b", executor=LocalExecutor(2))
    pd.testing.assert_frame_equal(_numbers(serial.table), _numbers(local.table))
    t = serial.table
    per_kwh = t.groupby("electricity_price")[["energy_cost_usd", "energy_kwh"]].sum()
    usd_per_kwh = per_kwh["energy_cost_usd"] / per_kwh["energy_kwh"]
    # every price tripled; the placements may shift a little towards cheaper nodes
    assert usd_per_kwh[3.0] == pytest.approx(3 * usd_per_kwh[1.0], rel=0.03)


def test_a_real_local_ray_cluster_gives_the_same_table(tmp_path, local_ray):
    from heddle.sim.executors import RayExecutor

    spec = load_sweep_spec(_spec(tmp_path, seeds=[0, 1], policies=["optimal"]))
    local = run_sweep(spec, tmp_path / "local", executor=LocalExecutor(2))
    on_ray = run_sweep(spec, tmp_path / "ray", executor=RayExecutor("local", num_cpus=2))
    assert local_ray.is_initialized()
    assert on_ray.failures.empty
    pd.testing.assert_frame_equal(_numbers(local.table), _numbers(on_ray.table))


def _metrics(payload: dict) -> dict:
    """A comparison's metrics without what depends on the machine (wall time)."""
    return {run: {k: v for k, v in m.items() if "wall" not in k} for run, m in payload.items()}


def test_sim_comparison_on_a_real_local_ray_cluster_gives_the_local_numbers(local_ray):
    import json

    from typer.testing import CliRunner

    from heddle.cli.main import app

    args = ["sim", "-f", "demo", "-f", "small", "--horizon", "900", "--json", "--workers", "2"]
    local = CliRunner().invoke(app, args)
    on_ray = CliRunner().invoke(app, [*args, "--ray", "local"])  # joins the running cluster
    assert local.exit_code == 0 and on_ray.exit_code == 0, (local.stderr, on_ray.stderr)
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert set(a) == {"demo", "small"}
    assert _metrics(a) == _metrics(b)


@pytest.mark.parametrize("doc, field", [
    ({"fleets": ["demo"], "polices": ["optimal"]}, "polices"),
    ({"fleets": ["demo"], "growth": [-1]}, "growth.0"),
    ({"fleets": []}, "fleets"),
])
def test_bad_spec_names_the_file_and_field(tmp_path, doc, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(SimError, match=f"bad.yaml: field '{field}'"):
        load_sweep_spec(path)


def test_cli_prints_the_table_and_exits_nonzero_on_a_failed_run(tmp_path):
    path = _spec(tmp_path, fleets=["demo", "missing-fleet.yaml"], policies=["optimal"])
    cmd = [sys.executable, "-m", "heddle.cli.main", "sweep", str(path), "-o", str(tmp_path / "out"), "--serial"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "test sweep: 1 runs" in proc.stdout
    assert "missing-fleet" in proc.stderr


def test_docs_examples_are_valid_and_the_shipped_example_runs(tmp_path, monkeypatch):
    import re
    import shlex

    from typer.testing import CliRunner

    from heddle.cli.main import app

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "sweeps.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    assert len(blocks) == 2
    for k, block in enumerate(blocks):
        path = tmp_path / f"doc{k}.yaml"
        path.write_text(block, encoding="utf-8")
        assert len(expand(load_sweep_spec(path))) in (8, 3)
    commands = [shlex.split(line.split("#")[0])[3:] for line in doc.splitlines() if line.startswith("uv run heddle")]
    assert {c[0] for c in commands} == {"sweep", "sim", "advise"}
    for command in commands:  # every documented option exists (--help stops before running)
        shown = CliRunner().invoke(app, [*command, "--help"])
        assert shown.exit_code == 0, (command, shown.output)
    first = next(line for line in doc.splitlines() if line.startswith("uv run heddle sweep"))
    args = shlex.split(first.split("#")[0])[3:]
    args[1] = str(root / args[1])
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "sweep-out" / "results.csv")) == 8
