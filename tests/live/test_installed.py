"""Installed models in the live runtime (heddle.models.installed): what an agent reports its
servers have (protocol 1.14), unknown until each has answered, and what the control plane's
node makes of it."""

from __future__ import annotations

from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutorRegistry
from heddle.live.backends import OllamaExecutor
from heddle.live.backends.settings import BackendSettings, build_backends
from tests.live.backendkit import MLX_MODEL
from tests.live.llmstandin import StandIn
from tests.live.test_protocol import capacity

Q8 = ("llama3.1:8b-instruct-q8_0", {"parameter_size": "8.0B", "quantization_level": "Q8_0"})


def test_the_report_carries_the_installed_models_and_leaves_them_out_when_unknown():
    assert b'"installed"' not in p.encode(capacity())  # unknown: byte for byte a 1.13 report
    assert p.node_from_report(capacity()).installed is None  # ... and the node may run any model
    pairs = (p.ResidentModel(model="gpt-oss-20b", quant="mxfp4"), p.ResidentModel(model="llama-3.1-8b", quant="q4_0"))
    report = p.decode(p.encode(capacity(installed=pairs)), p.CapacityReport)
    assert p.node_from_report(report).installed == {("gpt-oss-20b", "mxfp4"), ("llama-3.1-8b", "q4_0")}
    assert p.node_from_report(capacity(installed=())).installed == frozenset()  # known: none


async def test_an_agent_reports_what_its_servers_have_once_each_has_answered():
    server = StandIn("llama3.1:8b-instruct-q4_K_M", also=(Q8,))
    server.loaded.remove(Q8[0])  # installed, not loaded: reported all the same
    ollama = OllamaExecutor(server.url)
    registry = ExecutorRegistry()
    registry.register(ollama)
    try:
        assert registry.installed_models() is None  # not asked yet: unknown
        await ollama.refresh()
        assert registry.installed_models() == (("llama-3.1-8b", "q4_k_m"), ("llama-3.1-8b", "q8_0"))
        assert registry.resident_models() == (("llama-3.1-8b", "q4_k_m"),)
    finally:
        await ollama.close()
        server.stop()


def test_an_mlx_backend_has_its_one_model_and_an_agent_without_a_model_server_says_nothing():
    registry = ExecutorRegistry()
    for executor in build_backends(BackendSettings(mlx_model=MLX_MODEL, anthropic_api_key="sk-test")):
        registry.register(executor)
    assert registry.installed_models() == (("llama-3.1-8b", "q4_0"),)
    claude_only = ExecutorRegistry()
    for executor in build_backends(BackendSettings(anthropic_api_key="sk-test")):
        claude_only.register(executor)
    assert claude_only.installed_models() is None  # no local server: any model may come, as before


def test_an_exported_fleet_keeps_what_each_nodes_servers_have_for_the_twin():
    import yaml

    from heddle.live.control.export import fleet_document
    from heddle.models.fleet import parse_fleet

    report = capacity(installed=(p.ResidentModel(model="llama-3.1-8b", quant="q4_0"),))
    document = fleet_document([(p.node_from_report(report), report)])
    assert document["nodes"][0]["installed"] == ["llama-3.1-8b:q4_0"]
    assert parse_fleet(yaml.safe_dump(document)).nodes[0].installed == {("llama-3.1-8b", "q4_0")}
    assert "installed" not in fleet_document([(p.node_from_report(capacity()), capacity())])["nodes"][0]
