"""Which LLM backends an agent runs, from heddle's settings (CLI > env > file > defaults).

A backend is enabled by its setting: ``lm_studio_url``, ``openai_url`` (llama.cpp server,
vLLM, mlx-lm server), ``ollama_url``, ``mlx_model`` (MLX in-process: the ``mlx`` extra),
``anthropic_api_key`` (+ ``anthropic_base_url``). The
seed's environment names ``LM_STUDIO_URL``, ``OLLAMA_URL``, ``ANTHROPIC_API_KEY`` and
``ANTHROPIC_BASE_URL`` are read too (heddle.config); nothing is enabled by default, so an
agent never talks to a server nobody configured.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from heddle.config import Settings
from heddle.live.agent.executors import Executor
from heddle.live.backends.claude import ClaudeExecutor
from heddle.live.backends.common import BackendTimeouts
from heddle.live.backends.local import DEFAULT_REFRESH_EVERY_S, LocalServer
from heddle.live.backends.mlx import MlxExecutor
from heddle.live.backends.ollama import OllamaExecutor
from heddle.live.backends.openai import OpenAIExecutor
from heddle.live.backends.router import LlmRouter

__all__ = ["BackendSettings", "backend_settings", "build_backends"]

_URL = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")


class BackendSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lm_studio_url: Annotated[str, _URL] | None = None
    openai_url: Annotated[str, _URL] | None = None
    ollama_url: Annotated[str, _URL] | None = None
    mlx_model: Annotated[str, Field(min_length=1)] | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: Annotated[str, _URL] | None = None
    llm_read_timeout_s: Annotated[float, Field(gt=0)] = BackendTimeouts().read_s
    model_refresh_s: Annotated[float, Field(gt=0)] = DEFAULT_REFRESH_EVERY_S

    @property
    def any(self) -> bool:
        return any((self.lm_studio_url, self.openai_url, self.ollama_url, self.mlx_model,
                    self.anthropic_api_key))


def backend_settings(settings: Settings) -> BackendSettings:
    """Raises pydantic's ValidationError naming the setting (the CLI reports it)."""
    names = BackendSettings.model_fields
    return BackendSettings(**{n: getattr(settings, n) for n in names if getattr(settings, n) is not None})


def build_backends(config: BackendSettings) -> list[Executor]:
    """The configured backends, each under its own kind, and the ``llm`` router over them."""
    timeouts = BackendTimeouts(read_s=config.llm_read_timeout_s)
    common = {"timeouts": timeouts, "refresh_every_s": config.model_refresh_s}
    local: list[LocalServer | MlxExecutor] = []
    if config.lm_studio_url:
        local.append(OpenAIExecutor(config.lm_studio_url, kinds=("lmstudio",), backend="lm-studio",
                                    **common))
    if config.openai_url:
        local.append(OpenAIExecutor(config.openai_url, kinds=("openai",), **common))
    if config.ollama_url:
        local.append(OllamaExecutor(config.ollama_url, **common))
    if config.mlx_model:  # after the servers: LM Studio, when it has the model, wins
        local.append(MlxExecutor(config.mlx_model))
    if local and not config.openai_url and local[0].backend == "lm-studio":
        local[0].kinds = ("lmstudio", "openai")  # "openai" names the one OpenAI-style server
    claude = None
    if config.anthropic_api_key:
        claude = ClaudeExecutor(config.anthropic_api_key.get_secret_value(),
                                config.anthropic_base_url, timeouts=timeouts)
    if not local and claude is None:
        return []
    return [*local, *([claude] if claude else []), LlmRouter(local, claude)]
