"""heddle's settings: one pydantic model from ~/.heddle/config.yaml < HEDDLE_* env vars < CLI flags.

The config file path is `$HEDDLE_CONFIG` when set, else `~/.heddle/config.yaml`; a missing
file is fine (defaults apply). Every bad value is reported with where it came from: the file
and line, the environment variable, or the CLI flag.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.models.errors import ConfigError
from heddle.models.userdir import CONFIG_ENV, config_path
from heddle.models.yamlsource import format_validation_error, load_yaml

__all__ = ["ENV_PREFIX", "Settings", "config_path", "load_settings"]

ENV_PREFIX = "HEDDLE_"
ENV_ALIASES = {
    "LM_STUDIO_URL": "lm_studio_url", "OLLAMA_URL": "ollama_url",
    "ANTHROPIC_API_KEY": "anthropic_api_key", "ANTHROPIC_BASE_URL": "anthropic_base_url",
}
"""The names LLM tools already use for these settings; a HEDDLE_* variable wins over them."""


class Settings(BaseModel):
    """Everything a `heddle` command may be configured with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fleet: str = "demo"  # sim, check, place, advise, models fleet: a shipped fleet name or a fleet YAML
    trace: str = "demo"  # sim, check: a shipped trace name, a trace file or a workload YAML
    advise_trace: str = "demo-14d"  # advise: purchase advice wants weeks of work, not hours
    policy: str = "optimal"  # sim, place: placement policy name (heddle.optimizer)
    seed: int = 0  # sim, advise: seed of every numpy Generator the command creates
    electricity_usd_per_kwh: Annotated[float, Field(ge=0)] | None = None  # advise; None: the fleet's
    nats_url: str | None = None  # the live runtime (agent, scheduler, submit...); None: its default
    data_dir: Path = Path("~/.heddle")  # the live runtime (`heddle up`): JetStream store and state
    output: Literal["table", "json"] = "table"  # models predict: "json" prints JSON
    log_level: Literal["debug", "info", "warning", "error"] = "info"  # live runtime logs; debug also
    # makes every command show the Python traceback of an internal error
    # `heddle agent` (heddle.live.agent); None: the agent's own default (host name, CPU count, ...)
    node_id: str | None = None  # this machine's node id in the live fleet
    device: str | None = None  # catalog device id of this machine
    slots: Annotated[int, Field(ge=1)] | None = None  # concurrent tasks on this machine
    owner: str | None = None  # whose machine this is (personal work of others is refused)
    trust: list[str] | str | None = None  # owners whose personal work may run here ("a,b")
    labels: dict[str, str] | str | None = None  # node labels ("room=office,gpu=yes")
    processors: list[str] | str | None = None  # modules processor steps may come from ("a,b.c")
    report_every_s: Annotated[float, Field(gt=0)] | None = None  # capacity report interval
    drain_deadline_s: Annotated[float, Field(gt=0)] | None = None  # in-flight work's grace
    cpu_limit: Annotated[float, Field(gt=0, le=1)] | None = None  # share of a core a burn step may use
    # the agent's LLM backends (heddle.live.backends); each is enabled by setting it
    lm_studio_url: str | None = None  # LM Studio's server, e.g. http://127.0.0.1:1234
    openai_url: str | None = None  # another OpenAI-compatible server (llama.cpp, vLLM, mlx-lm)
    ollama_url: str | None = None  # Ollama, e.g. http://127.0.0.1:11434
    mlx_model: str | None = None  # MLX in-process (the mlx extra): a model directory or cached repo
    anthropic_api_key: str | None = None  # enables Claude (public work only)
    anthropic_base_url: str | None = None  # None: https://api.anthropic.com
    llm_read_timeout_s: Annotated[float, Field(gt=0)] | None = None  # no byte for this long: fail
    model_refresh_s: Annotated[float, Field(gt=0)] | None = None  # model discovery interval


def _from_file(path: Path) -> tuple[dict[str, Any], Any]:
    if path.is_dir():  # (a missing file is fine: no settings to apply)
        raise ConfigError(f"{path}: is a directory; expected a YAML settings file (${CONFIG_ENV} or ~/.heddle/config.yaml)")
    if not path.is_file():
        return {}, None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: byte {exc.start} is not UTF-8 text; expected a YAML settings file") from None
    doc = load_yaml(text, str(path), ConfigError)
    if doc.data is None:
        return {}, doc
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{doc.where(())}: expected a mapping of setting: value")
    return dict(doc.data), doc


def _from_env(env: Mapping[str, str]) -> dict[str, str]:
    fields = Settings.model_fields
    out = {name: env[key] for key, name in ENV_ALIASES.items() if env.get(key)}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and key != CONFIG_ENV:
            name = key[len(ENV_PREFIX):].lower()
            if name in fields:
                out[name] = value
    return out


def load_settings(
    cli: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Merge file < environment < `cli` (None values in `cli` mean "flag not given")."""
    env = os.environ if env is None else env
    path = config_path(env)
    file_values, doc = _from_file(path)
    if doc is not None:
        try:
            Settings.model_validate(file_values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, doc)) from None
    env_values = _from_env(env)
    for name, value in env_values.items():
        try:
            Settings.model_validate({name: value})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"environment variable {ENV_PREFIX}{name.upper()}={value!r}: {err['msg']}") from None
    cli_values = {k: v for k, v in (cli or {}).items() if v is not None}
    merged = {**file_values, **env_values, **cli_values}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise ConfigError(f"option {flag}: {err['msg']}") from None
    return settings.model_copy(update={"data_dir": settings.data_dir.expanduser()})
