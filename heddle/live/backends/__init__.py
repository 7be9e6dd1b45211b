"""LLM backends for the live agent: Ollama, OpenAI-compatible servers (LM Studio, llama.cpp,
vLLM, mlx-lm), Claude and MLX in-process (the ``mlx`` extra), as executors under the kinds
"llm", "ollama", "openai"/"lmstudio", "claude" and "mlx"; worker YAML step definitions; model
discovery mapped to catalog ids; machine probes naming the catalog device."""

from heddle.live.backends.claude import ClaudeExecutor
from heddle.live.backends.common import BackendTimeouts, build_prompt
from heddle.live.backends.local import LocalServer
from heddle.live.backends.mlx import MlxExecutor
from heddle.live.backends.names import ServedModel, catalog_ids
from heddle.live.backends.ollama import OllamaExecutor
from heddle.live.backends.openai import OpenAIExecutor
from heddle.live.backends.probes import ProbedDevice, detect_device
from heddle.live.backends.router import LlmRouter
from heddle.live.backends.settings import BackendSettings, backend_settings, build_backends
from heddle.live.backends.worker import WorkerDef, WorkerError, load_worker, parse_worker

__all__ = [
    "BackendSettings",
    "BackendTimeouts",
    "ClaudeExecutor",
    "LlmRouter",
    "LocalServer",
    "MlxExecutor",
    "OllamaExecutor",
    "OpenAIExecutor",
    "ProbedDevice",
    "ServedModel",
    "WorkerDef",
    "WorkerError",
    "backend_settings",
    "build_backends",
    "build_prompt",
    "catalog_ids",
    "detect_device",
    "load_worker",
    "parse_worker",
]
