"""LLM backends against stand-in servers on 127.0.0.1: the happy paths of each protocol, what
the results report, model discovery and the choice of backend."""

from __future__ import annotations

import asyncio
import functools
import re
import shlex
import time
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from heddle.config import load_settings
from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import (
    BackendSettings,
    ClaudeExecutor,
    LlmRouter,
    OllamaExecutor,
    OpenAIExecutor,
    ServedModel,
    backend_settings,
    build_backends,
    build_prompt,
)
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from tests.live.llmstandin import WORDS, StandIn

WAIT_S = 30.0
pytestmark = pytest.mark.filterwarnings("error:The model 'claude-:DeprecationWarning")  # an id past its end-of-life fails


@pytest.fixture
def standin():
    servers: list[StandIn] = []

    def _make(model: str = "llama3.1:8b-instruct-q4_K_M") -> StandIn:
        servers.append(StandIn(model))
        return servers[-1]

    yield _make
    for s in servers:
        s.stop()


def assignment(task_id: str = "t1", payload=None, options=None, **task) -> p.Assignment:
    task.setdefault("model", "llama-3.1-8b")
    task.setdefault("quant", "q4_k_m")
    return p.Assignment(
        sender="test", seq=1, sent_at=time.time(), node_id="n1", attempt=0, payload=payload,
        queued_at=time.time(), task=p.TaskSpec(id=task_id, kind="llm", **task),
        executor=p.ExecutorSpec(kind="llm", options=options or {}),
    )


async def test_ollama_streams_a_chat_and_reports_tokens_timings_and_the_model_used(standin):
    server = standin()
    ollama = OllamaExecutor(server.url)
    progress = Progress()
    try:
        result = await ollama.run(assignment(prompt_tokens=300, output_tokens=40), progress)
    finally:
        await ollama.close()
    assert result["text"] == "".join(WORDS)
    assert result["model_used"] == "llama3.1:8b-instruct-q4_K_M"
    assert (result["prompt_tokens"], result["output_tokens"]) == (12, len(WORDS))
    assert result["ttft_s"] is not None and result["ttft_s"] <= result["duration_s"]
    assert result["decode_tokens_per_s"] > 0 and result["cost_usd"] == 0.0
    assert progress.first_token_at is not None
    path, _, body = server.requests[-1]
    assert path == "/api/chat" and body["stream"] is True
    assert body["options"]["num_predict"] == 40  # capped at the task's output_tokens
    # no payload: a built prompt of about prompt_tokens words
    assert body["messages"][0]["content"] == build_prompt(300)
    assert 280 <= len(body["messages"][0]["content"].split()) <= 300


async def test_openai_compatible_server_streams_with_usage(standin):
    server = standin("lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf")
    lm = OpenAIExecutor(server.url, kinds=("lmstudio",), backend="lm-studio")
    try:
        result = await lm.run(assignment(payload={"messages": [{"role": "user", "content": "hi"}],
                                                  "system": "be brief"}, output_tokens=9), Progress())
    finally:
        await lm.close()
    path, _, body = server.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 9 and body["model"] == server.model
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert result["backend"] == "lm-studio" and result["text"] == "".join(WORDS)
    assert (result["prompt_tokens"], result["output_tokens"]) == (12, len(WORDS))
    assert result["finish_reason"] == "stop" and not result["output_tokens_counted"]


async def test_claude_through_the_sdk_is_priced_from_the_catalog(standin):
    server = standin()
    claude = ClaudeExecutor("sk-test", server.url)
    try:
        result = await claude.run(assignment(model=None, quant=None, tier="standard", account="team",
                                             payload={"prompt": "hello"}), Progress())
    finally:
        await claude.close()
    path, headers, body = server.requests[-1]
    assert path == "/v1/messages" and body["model"] == "claude-sonnet-4-6" and body["stream"] is True
    assert "sk-test" in (headers.get("X-Api-Key", "") + headers.get("Authorization", ""))
    offer = catalog.offer("claude-sonnet-4.6")
    assert result["offer"] == "claude-sonnet-4.6" and result["account"] == "team"
    assert result["cost_usd"] == pytest.approx(api_cost_usd(offer, 20, len(WORDS)))
    assert result["cost_usd"] > 0 and result["text"] == "".join(WORDS)
    assert result["finish_reason"] == "end_turn"


async def test_claude_refuses_personal_and_sensitive_work(standin):
    server = standin()
    claude = ClaudeExecutor("sk-test", server.url)
    try:
        for privacy in ("personal", "sensitive"):
            with pytest.raises(ExecutionError, match="privacy"):
                await claude.run(assignment(model=None, tier="standard", privacy=privacy, owner="ann"),
                                 Progress())
    finally:
        await claude.close()
    assert server.requests == []  # nothing left the machine


async def wait_for(condition, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_discovery_maps_loaded_models_to_catalog_ids_and_keeps_unknown_names_out(standin):
    server = standin()
    server.tags = [
        {"name": "llama3.1:8b-instruct-q4_K_M", "details": {}},
        {"name": "qwen2.5:latest", "details": {"parameter_size": "7.6B", "quantization_level": "Q4_K_M"}},
        {"name": "phi3:mini", "details": {"parameter_size": "3.8B", "quantization_level": "Q4_0"}},
    ]
    server.loaded = ["llama3.1:8b-instruct-q4_K_M", "phi3:mini"]
    ollama = OllamaExecutor(server.url, refresh_every_s=0.05)
    try:
        assert list(ollama.resident_models()) == []  # no I/O in the call: starts the refresh
        await wait_for(lambda: ollama.discovered_at is not None)
        assert list(ollama.resident_models()) == [("llama-3.1-8b", "q4_k_m")]  # phi3 is unknown
        assert {m.name: (m.model, m.quant) for m in ollama.inventory}["qwen2.5:latest"] == ("qwen2.5-7b", "q4_k_m")
        server.loaded.append("qwen2.5:latest")  # loaded since: found by the background refresh
        await wait_for(lambda: ("qwen2.5-7b", "q4_k_m") in list(ollama.resident_models()))
    finally:
        await ollama.close()


async def test_a_model_the_server_does_not_offer_fails_with_what_it_offers(standin):
    server = standin()
    ollama = OllamaExecutor(server.url)
    try:
        with pytest.raises(ExecutionError, match=r"does not offer llama-3.1-70b .*llama3.1:8b-instruct-q4_K_M"):
            await ollama.run(assignment(model="llama-3.1-70b"), Progress())
    finally:
        await ollama.close()
    assert server.requests == []


async def test_lm_studio_wins_over_ollama_and_tier_only_public_work_goes_to_claude(standin):
    lm, ol = standin(), standin()
    config = BackendSettings(lm_studio_url=lm.url, ollama_url=ol.url, anthropic_api_key="sk",
                             anthropic_base_url=ol.url)
    executors = build_backends(config)
    router = next(e for e in executors if isinstance(e, LlmRouter))
    try:
        for server in router.local:
            await server.refresh()
        assert router.choose(assignment()).backend == "lm-studio"
        assert router.choose(assignment(options={"backend": "ollama"})).backend == "ollama"
        assert router.choose(assignment(model=None, quant=None, tier="frontier")).backend == "claude"
        assert router.choose(assignment(model=None, quant=None, tier="frontier", privacy="sensitive")
                             ).backend == "lm-studio"
        result = await router.run(assignment(model=None, quant=None, tier="frontier"), Progress())
        assert result["offer"] == "claude-opus-4.6"
    finally:
        for e in executors:
            await e.close()


async def test_the_first_task_finds_the_server_that_offers_its_model(standin):
    lm, ol = standin("qwen2.5-7b-instruct-q8_0"), standin("llama3.1:8b-instruct-q4_K_M")
    executors = build_backends(BackendSettings(lm_studio_url=lm.url, ollama_url=ol.url))
    router = next(e for e in executors if isinstance(e, LlmRouter))
    try:  # no discovery has run yet: the router asks the servers before it chooses
        result = await router.run(assignment(), Progress())
    finally:
        for e in executors:
            await e.close()
    assert result["backend"] == "ollama" and result["model_used"] == "llama3.1:8b-instruct-q4_K_M"
    assert [r[0] for r in lm.requests] == []  # LM Studio was asked what it offers, not to chat


MODEL_IDS = [None, *sorted(catalog.models()), *sorted(catalog.offers())]


@functools.cache
def routers() -> dict[bool, LlmRouter]:
    """Routers with and without local servers (built once: the SDK client is slow to make;
    nothing here does I/O, the inventory is set by hand)."""
    local = [OllamaExecutor("http://127.0.0.1:9"), OpenAIExecutor("http://127.0.0.1:9", backend="lm-studio")]
    local[0].inventory = (ServedModel("llama3.1:8b-instruct-q4_K_M", "llama-3.1-8b", "q4_k_m", True),)
    claude = ClaudeExecutor("sk", "http://127.0.0.1:9")
    return {True: LlmRouter(local, claude), False: LlmRouter([], claude)}


@settings(max_examples=200, deadline=None)
@given(privacy=st.sampled_from(["public", "personal", "sensitive"]),
       tier=st.sampled_from([None, "local", "standard", "frontier"]),
       model=st.sampled_from(MODEL_IDS),
       backend=st.sampled_from([None, "ollama", "lm-studio", "claude"]),
       with_local=st.booleans())
def test_personal_and_sensitive_work_is_never_routed_to_claude(privacy, tier, model, backend, with_local):
    router = routers()[with_local]
    a = assignment(model=model, quant=None, tier=tier, privacy=privacy,
                   owner="ann" if privacy == "personal" else None,
                   options={"backend": backend} if backend else None)
    try:
        chosen = router.choose(a)
    except ExecutionError as exc:
        assert privacy != "public" or backend is not None or not with_local or model in catalog.offers(), exc
        return
    assert chosen is not router.claude or privacy == "public"


def test_backend_settings_follow_cli_then_env_then_file(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("ollama_url: http://file:11434\nlm_studio_url: http://file:1234\n")
    env = {"HEDDLE_CONFIG": str(config), "OLLAMA_URL": "http://seed-env:11434",
           "ANTHROPIC_API_KEY": "sk-env"}
    chosen = backend_settings(load_settings({}, env=env))
    assert chosen.ollama_url == "http://seed-env:11434" and chosen.lm_studio_url == "http://file:1234"
    assert chosen.anthropic_api_key.get_secret_value() == "sk-env"
    assert "sk-env" not in repr(chosen)  # the key never reaches a log line
    env["HEDDLE_OLLAMA_URL"] = "http://heddle-env:11434"  # heddle's own name wins over the seed's
    assert backend_settings(load_settings({}, env=env)).ollama_url == "http://heddle-env:11434"
    cli = {"ollama_url": "http://cli:11434"}
    assert backend_settings(load_settings(cli, env=env)).ollama_url == "http://cli:11434"
    with pytest.raises(ValidationError, match="ollama_url"):
        backend_settings(load_settings({"ollama_url": "localhost:11434"}, env=env))


def llm_backends_section() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "live.md").read_text(encoding="utf-8")
    start = doc.index("\n## LLM backends\n")
    end = doc.find("\n## ", start + 1)
    return doc[start:] if end == -1 else doc[start:end]


def test_docs_model_mapping_example_prints_what_it_says(capsys):
    section = llm_backends_section()
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/live.md", "exec"), {"__name__": "__docs__"})  # noqa: S102
    printed = capsys.readouterr().out.strip().split("\n")
    said = re.search(r"prints `(.*?)`, `(.*?)` and `(.*?)`", section).groups()
    assert printed == list(said)


async def test_docs_agent_command_enables_the_backends(monkeypatch, tmp_path):
    from heddle.cli.main import app

    monkeypatch.setenv("HEDDLE_CONFIG", str(tmp_path / "none.yaml"))
    section = llm_backends_section()
    (line,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    args = shlex.split(line)
    assert args[:2] == ["heddle", "agent"]
    ctx = typer.main.get_command(app).make_context("heddle", args[1:], resilient_parsing=False)
    params = ctx.command.get_command(ctx, "agent").make_context("agent", args[2:]).params
    cli = {k: params[k] for k in ("lm_studio_url", "ollama_url")}
    chosen = backend_settings(load_settings(cli, env={"HEDDLE_CONFIG": str(tmp_path / "none.yaml")}))
    executors = build_backends(chosen)
    assert [e.backend for e in executors[:2]] == ["lm-studio", "ollama"]
    assert LlmRouter in {type(e) for e in executors}
    for e in executors:
        await e.close()


def test_every_claude_offer_is_a_current_model_of_the_installed_sdk():
    """The catalog's API offers name models the SDK knows and has not marked for end-of-life
    (the SDK keeps its deprecation table in the messages module; a new SDK may move it)."""
    from typing import get_args

    from anthropic.resources.messages import messages as sdk_messages
    from anthropic.types.model_param import ModelParam

    known = {name for arg in get_args(ModelParam) for name in get_args(arg)}
    api = [o for o in catalog.offers().values() if o.kind.value == "api"]
    assert api
    for offer in api:
        name = offer.id.replace(".", "-")
        assert name in known, name
        assert name not in sdk_messages.DEPRECATED_MODELS, (name, sdk_messages.DEPRECATED_MODELS.get(name))
