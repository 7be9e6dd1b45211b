"""The twin never leaves a usable node idle, ends a run at its last completion, and keeps the
pipeline structure of tasks handed to it as `Task` objects (issue 14's reproducers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heddle.models import (
    Fleet,
    ModelId,
    Node,
    NodeId,
    OwnerId,
    Task,
    TaskId,
    TaskKind,
    catalog,
    perf,
)
from heddle.sim import TwinSettings, simulate
from tests.sim.conftest import make_device, make_fleet, processor_trace


def _big_and_small() -> Fleet:
    big = Node(NodeId("big"), catalog.device("m2-ultra-60"), memory_gb=192.0, owner=OwnerId("o"), slots=1)
    small = Node(NodeId("small"), catalog.device("m4-pro-20"), memory_gb=24.0, owner=OwnerId("o"), slots=1)
    return Fleet("big-and-small", (big, small))


def _llm_rows(rows: list[tuple[float, str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["arrival_s", "model", "task_id"])
    df["kind"], df["quant"], df["privacy"], df["owner"] = "llm", "q4_k_m", "public", "o"
    df["prompt_tokens"], df["output_tokens"] = 500, 200
    return df


@pytest.mark.parametrize("policy", ["fast", "optimal"])
@pytest.mark.parametrize("express", [False, True])
def test_a_freed_slot_goes_to_waiting_work_that_fits_there(policy, express) -> None:
    # 31 70B requests only `big` can hold queue up; two 8B requests behind them can use `small`
    rows = [(0.0, "llama-3.1-70b", f"big{k}") for k in range(31)]
    rows += [(1.0, "llama-3.1-8b", "s1"), (2.0, "llama-3.1-8b", "s2")]
    rec = simulate(_big_and_small(), _llm_rows(rows), policy,
                   settings=TwinSettings(express=express)).records.set_index("task_id")
    assert (rec["status"] == "completed").all()
    s1, s2 = rec.loc["s1"], rec.loc["s2"]
    assert s1["target"] == "small" and s1["start"] == 1.0
    # s2 arrives while s1 runs on `small`; it must start the moment `small` frees
    assert s2["target"] == "small" and s2["start"] == pytest.approx(s1["finish"])
    big = rec[rec.index.str.startswith("big")]
    assert (big["target"] == "big").all()
    # `big` runs its queue back to back, oldest first
    starts = big["start"].to_numpy()
    assert (np.diff(starts) > 0).all()
    np.testing.assert_allclose(starts[1:], big["finish"].to_numpy()[:-1])


@pytest.mark.parametrize("policy", ["fast", "optimal"])
def test_a_run_ends_at_its_last_completion(policy) -> None:
    # two requests keep one node busy for the whole 1.97 s run: utilization 1, not 1.97 / 5
    secs_per_cpu_s = perf.processor_seconds(make_device(), 1.0)
    df = processor_trace(np.array([0.0, 0.0]), np.array([0.985, 0.985]) / secs_per_cpu_s)
    result = simulate(make_fleet(1), df, policy)
    assert list(result.records["finish"]) == pytest.approx([0.985, 1.97])
    assert result.summary.utilization["n0"] == pytest.approx(1.0)
    idle_w = make_device().idle_power_w
    assert result.summary.idle_energy_kwh == pytest.approx(idle_w * 1.97 / 3.6e6)


def test_pipeline_tasks_given_as_task_objects_keep_their_dependencies() -> None:
    def stage(name: str, after: tuple[str, ...]) -> Task:
        return Task(TaskId(name), TaskKind.PROCESSOR, arrival_s=0.0, cpu_seconds=2.0, memory_gb=0.5,
                    owner=OwnerId("alice"), pipeline_id="job", stage=name, depends_on=after)

    tasks = [stage("chunk", ()), stage("embed", ("chunk",)), stage("report", ("embed",))]
    rec = simulate(make_fleet(3), tasks, "fast").records.set_index("task_id")
    assert (rec["status"] == "completed").all()
    assert rec.loc["embed", "start"] >= rec.loc["chunk", "finish"]
    assert rec.loc["report", "start"] >= rec.loc["embed", "finish"]


def test_model_ids_in_task_objects_survive_the_workload() -> None:
    task = Task(TaskId("t"), TaskKind.LLM, model=ModelId("llama-3.1-8b"), quant="q4_k_m",
                prompt_tokens=100, output_tokens=10, owner=OwnerId("alice"))
    assert simulate(make_fleet(1), [task], "fast").summary.completed == 1
