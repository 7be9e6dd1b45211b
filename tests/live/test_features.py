"""Features in the live runtime (heddle.live.features): what a payload needs, what each backend
declares and refuses (the same declaration), what an agent reports and what the control
plane's fleet makes of it, older agents included."""

from __future__ import annotations

import json

import pytest

from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import ClaudeExecutor, MlxExecutor, OllamaExecutor, OpenAIExecutor
from heddle.live.backends.router import LlmRouter
from heddle.live.backends.settings import BackendSettings, build_backends
from heddle.live.control.fleetview import FleetView
from heddle.live.features import implied, payload_needs, task_needs
from heddle.models import Fleet, TaskKind, catalog
from tests.live.backendkit import MLX_MODEL, assignment, close, harness
from tests.live.llmstandin import StandIn
from tests.live.mlxstandin import StandInMlxLm
from tests.live.test_protocol import capacity

ASK = {"role": "user", "content": "weather in Paris?"}
TOOLS = [{"name": "get_weather", "description": "the weather", "parameters": {"type": "object"}}]
PAYLOADS = {
    "tools": {"messages": [ASK], "tools": TOOLS},
    "embeddings": {"embed": {"input": ["a text"]}},
    "raw": {"completion": {"prompt": "<|fim_prefix|>def f(<|fim_suffix|>)<|fim_middle|>", "raw": True}},
    "suffix": {"completion": {"prompt": "def f(", "suffix": ")"}},
    "images": {"messages": [{"role": "user", "content": "what is this?", "images": [0]}],
               "images": [{"sha256": "0" * 64, "media_type": "image/png", "size": 68}]},
    "thinking": {"messages": [ASK], "think": "high"},
}
"""A payload needing each feature, as the gateway writes it."""
BACKEND_CLASSES = {"ollama": OllamaExecutor, "openai": OpenAIExecutor, "claude": ClaudeExecutor, "mlx": MlxExecutor}


@pytest.mark.parametrize(("payload", "needs"), [
    (PAYLOADS["tools"], {"tools"}),
    ({"messages": [ASK, {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "f",
                                                                            "arguments": "{}"}]},
                   {"role": "tool", "content": "sunny", "tool_call_id": "c"}]}, {"tools"}),  # tool turns, no tools
    (PAYLOADS["embeddings"], {"embeddings"}),
    (PAYLOADS["raw"], {"raw"}),
    (PAYLOADS["suffix"], {"suffix"}),
    (PAYLOADS["images"], {"images"}),
    (PAYLOADS["thinking"], {"thinking"}),
    ({"messages": [ASK], "think": False}, set()),  # asked not to think: any backend runs it
    ({"completion": {"prompt": "x", "suffix": ")", "raw": True}}, {"raw", "suffix"}),
    ({"messages": [ASK], "max_tokens": 5, "sampling": {"temperature": 0.2}}, set()),
    ("a plain prompt", set()),
    (None, set()),
])
def test_a_payload_needs_what_it_asks_for(payload, needs):
    assert payload_needs(payload) == needs
    assert task_needs(TaskKind.LLM, payload) == needs
    assert task_needs(TaskKind.PROCESSOR, payload) == frozenset()  # a processor's payload is its own


@pytest.mark.parametrize(("v", "offered"), [
    ("1.8", set()), ("1.9", {"tools"}), ("1.10", {"tools", "embeddings", "raw", "suffix"}),
    ("1.11", {"tools", "embeddings", "raw", "suffix", "images"}),
    ("1.12", {"tools", "embeddings", "raw", "suffix", "images", "thinking"}),
])
def test_an_agent_that_reports_no_features_runs_what_its_version_implies(v, offered):
    assert implied(v) == offered
    node = p.node_from_report(capacity(v=v))
    assert node.features == offered


def test_the_report_carries_each_backends_features_and_leaves_them_out_when_absent():
    before = capacity()
    assert b'"features"' not in p.encode(before)  # a report without them is byte for byte a 1.12 one
    features = {"mlx": ("raw",), "ollama": ("embeddings", "raw", "suffix", "tools"), "claude": ("tools",)}
    report = p.decode(p.encode(capacity(features=features)), p.CapacityReport)
    assert report.features == features
    node = p.node_from_report(report)
    assert node.features == {"embeddings", "raw", "suffix", "tools"}  # the local ones: not claude's
    assert node.runtime == "mlx+ollama"  # what the reasons name it by
    bad = json.loads(p.encode(capacity()))
    bad["features"] = {"mlx": ["Raw Prompts"]}
    with pytest.raises(p.ProtocolError, match=r"^features\.mlx\.0"):
        p.decode(json.dumps(bad).encode(), p.CapacityReport)


def test_an_agent_reports_what_each_configured_backend_declares():
    from heddle.live.agent.executors import ExecutorRegistry

    registry = ExecutorRegistry()
    for executor in build_backends(BackendSettings(ollama_url="http://127.0.0.1:9", mlx_model=MLX_MODEL,
                                                   anthropic_api_key="sk-test")):
        registry.register(executor)
    assert registry.features() == {"ollama": ("embeddings", "images", "raw", "suffix", "thinking", "tools"),
                                   "mlx": ("raw",), "claude": ("images", "thinking", "tools")}


LACKED = [(name, need) for name, cls in BACKEND_CLASSES.items() for need in PAYLOADS if need not in cls.features]
"""Each backend with each feature it does not declare (Claude: embeddings, raw, suffix; MLX:
tools, embeddings, suffix, images, thinking)."""


@pytest.mark.parametrize(("name", "need"), LACKED)
async def test_a_backend_refuses_what_it_does_not_declare_before_sending_anything(name, need):
    h = harness(name)
    try:
        with pytest.raises(ExecutionError) as refused:
            await h.executor.run(assignment(payload=PAYLOADS[need], **h.task), Progress())
        assert h.calls() == 0  # nothing reached the server or the model (nothing billed)
    finally:
        await close(h)
    reason = str(refused.value)
    assert f": {need}: {h.executor.refuses[need]}; send it to a node whose backend runs it" in reason


def test_every_feature_a_backend_lacks_has_its_reason():
    for cls in BACKEND_CLASSES.values():
        assert set(cls.refuses) == set(PAYLOADS) - cls.features, cls.__name__


async def test_the_router_sends_a_task_to_a_backend_that_runs_what_it_needs():
    server = StandIn("llama3.1:8b-instruct-q4_0")  # the same model and quant as the MLX one
    ollama = OllamaExecutor(server.url)
    try:
        await ollama.refresh()
        router = LlmRouter([MlxExecutor(MLX_MODEL, lm=StandInMlxLm()), ollama], None)
        task = {"model": "llama-3.1-8b", "quant": "q4_0"}
        assert router.choose(assignment(payload={"messages": [ASK]}, **task)).backend == "mlx"  # the first
        assert router.choose(assignment(payload=PAYLOADS["tools"], **task)).backend == "ollama"
        assert router.choose(assignment(payload=PAYLOADS["raw"], **task)).backend == "mlx"
    finally:
        await ollama.close()
        server.stop()


def test_the_fleet_offers_an_api_what_the_agents_calling_it_run():
    terms = Fleet("terms", (), tuple(catalog.offer(o) for o in ("claude-haiku-4.5", "claude-sonnet-4.6")))
    view = FleetView(terms=terms)
    view.observe(capacity(node_id="mac-1", cloud_offers=("claude-haiku-4.5",),
                          features={"mlx": ("raw",), "claude": ("tools",)}), 0.0)
    fleet = view.state.fleet
    assert fleet.node("mac-1").features == {"raw"}
    assert [o.id for o in fleet.cloud_offers] == ["claude-haiku-4.5"]
    assert fleet.offer_features == {"claude-haiku-4.5": {"tools"}}
    view.observe(capacity(node_id="pc-1", sender="agent-2", agent_id="agent-2", v="1.10",
                          cloud_offers=("claude-sonnet-4.6",)), 0.0)  # before images
    fleet = view.state.fleet
    assert fleet.node("pc-1").features == {"tools", "embeddings", "raw", "suffix"}  # its version's
    assert fleet.offer_features["claude-sonnet-4.6"] == {"tools", "embeddings", "raw", "suffix"}


def test_an_exported_fleet_keeps_what_each_node_runs_for_the_twin():
    import yaml

    from heddle.live.control.export import fleet_document
    from heddle.models.fleet import parse_fleet

    report = capacity(features={"mlx": ("raw",)})
    document = fleet_document([(p.node_from_report(report), report)])
    assert document["nodes"][0]["features"] == ["raw"]
    assert parse_fleet(yaml.safe_dump(document)).nodes[0].features == {"raw"}
