"""MLX in-process beyond the shared contract: mlx-lm imported only when used (and the reason
when it cannot be), the model loaded once by the first task and then reported resident, and
its place among the configured backends."""

from __future__ import annotations

import sys

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import BackendSettings, LlmRouter, MlxExecutor, build_backends
from tests.live.backendkit import MLX_MODEL, assignment
from tests.live.llmstandin import WORDS, StandIn
from tests.live.mlxstandin import StandInMlxLm

Q4 = {"model": "llama-3.1-8b", "quant": "q4_0"}


async def test_without_mlx_lm_the_task_fails_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlx_lm", None)  # as on a machine without it: import fails
    mlx = MlxExecutor(MLX_MODEL)  # constructing it imports nothing
    with pytest.raises(ExecutionError, match=r"mlx: mlx-lm is not usable here .*install the mlx extra"):
        await mlx.run(assignment(**Q4), Progress())


async def test_the_model_loads_once_on_the_first_task_and_is_then_resident():
    lm = StandInMlxLm()
    mlx = MlxExecutor(MLX_MODEL, lm=lm)
    assert list(mlx.resident_models()) == [] and lm.loads == []
    for task_id in ("a", "b"):
        assert (await mlx.run(assignment(task_id, **Q4), Progress()))["model_used"] == MLX_MODEL
    assert lm.loads == [MLX_MODEL]
    assert list(mlx.resident_models()) == [("llama-3.1-8b", "q4_0")]
    with pytest.raises(ExecutionError, match=r"mlx: .*4bit is llama-3.1-8b q4_0, not qwen2.5-7b"):
        await mlx.run(assignment("c", model="qwen2.5-7b", quant="q4_0"), Progress())


async def test_a_model_that_cannot_load_fails_with_the_reason():
    mlx = MlxExecutor("/missing/model", lm=StandInMlxLm())
    with pytest.raises(ExecutionError, match=r"mlx: cannot load /missing/model: FileNotFoundError"):
        await mlx.run(assignment(model=None), Progress())


async def test_lm_studio_wins_over_mlx_and_mlx_serves_what_only_it_has():
    lm_studio = StandIn("lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf")
    executors = build_backends(BackendSettings(lm_studio_url=lm_studio.url, mlx_model=MLX_MODEL))
    router = next(e for e in executors if isinstance(e, LlmRouter))
    mlx = next(e for e in executors if isinstance(e, MlxExecutor))
    mlx._lm = StandInMlxLm()
    try:
        for server in router.local:
            await server.refresh()
        assert router.choose(assignment(model="llama-3.1-8b", quant=None)).backend == "lm-studio"
        result = await router.run(assignment(**Q4), Progress())
        assert result["backend"] == "mlx" and result["text"] == "".join(WORDS)
    finally:
        for e in executors:
            await e.close()
        lm_studio.stop()
