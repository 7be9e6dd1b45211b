"""The agent's record of measured LLM speeds (perf-records.jsonl), written in batches."""

from __future__ import annotations

import logging

from heddle.live.agent.perflog import PerfLog
from heddle.live.protocol import TaskSpec
from heddle.models.learned import load_records


def _run(i: int, **figures: float) -> tuple[TaskSpec, dict, float]:
    task = TaskSpec(id=f"t{i}", kind="llm", model="llama-3.1-8b", quant="q4_k_m")
    result = {"backend": "ollama", "prompt_tokens": 100, "output_tokens": 20, "ttft_s": 0.2,
              "decode_tokens_per_s": 30.0} | figures
    return task, result, 1000.0 + i


def test_an_odd_figure_loses_its_own_record_not_the_batch(tmp_path, caplog):
    # a backend reporting a negative time to first token (a clock step): the fit cannot use
    # that attempt, but the other attempts of the same second are kept
    log = PerfLog(tmp_path / "perf-records.jsonl", "llm1", "m1-8")
    with caplog.at_level(logging.WARNING, logger="heddle.live.agent"):
        written = log.write([_run(0), _run(1, ttft_s=-0.5), _run(2), _run(3, prompt_tokens=-1)])
    assert written == 2
    assert [r.at for r in load_records(log.path)] == [1000.0, 1002.0]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "task t1" in warnings[0] and "ttft_s" in warnings[0]
    assert "\n" not in warnings[0]
