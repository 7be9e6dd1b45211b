"""The service time the live runtime's shadow predictions use (heddle.models.service) is the
twin's: one task on an idle node runs exactly as long in a twin run."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.models import Fleet, Node, NodeId, OwnerId, Task, TaskKind, catalog
from heddle.models.service import service_time
from heddle.sim import simulate

DEVICES = ("m1-7", "m2-ultra-76", "m4-10")
MODELS = ("qwen2.5-7b", "llama-3.1-8b")


def _fleet(device: str, speed: float | None) -> Fleet:
    spec = catalog.device(device)
    if speed is not None:  # a node at its measured speed, as fleet YAML's cpu_speed_relative builds it
        from dataclasses import replace

        spec = replace(spec, cpu_single_core_relative=speed)
    return Fleet(name="one", nodes=(Node(id=NodeId("n"), device=spec, memory_gb=float(max(spec.memory_options_gb)),
                                         owner=OwnerId("o")),))


@settings(max_examples=25, deadline=None)
@given(device=st.sampled_from(DEVICES), speed=st.none() | st.floats(0.05, 4.0),
       cpu=st.floats(0.001, 100.0), llm=st.booleans(), model=st.sampled_from(MODELS),
       prompt=st.integers(1, 4000), output=st.integers(1, 1000))
def test_service_time_is_the_twins(device, speed, cpu, llm, model, prompt, output):
    fleet = _fleet(device, speed)
    task = (Task(id="t", kind=TaskKind.LLM, model=model, quant="q4_k_m", prompt_tokens=prompt, output_tokens=output) if llm
            else Task(id="t", kind=TaskKind.PROCESSOR, cpu_seconds=cpu))
    record = simulate(fleet, [task], policy="fast").records.iloc[0]
    predicted = service_time(fleet.nodes[0], task, resident=False)  # the twin loads the model first
    assert record["status"] == "completed"
    assert record["service"] == pytest.approx(predicted.service_s, rel=1e-9)
    assert record["ttft"] == pytest.approx(predicted.first_token_s, rel=1e-9)
