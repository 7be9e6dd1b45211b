"""One real cluster shared by the gateway tests (starting the processes is most of their time):
nats-server, the control plane, agents with stand-in Ollama servers and `heddle gateway`.

Nodes: alice-mac (owner alice, 1 slot: saturates), carol-a and carol-b (carol, 1 slot each: the
node-loss test kills one), all three on stand-in Ollama servers serving llama-3.1-8b; dave-pc
(dave, 1 slot) on a stand-in OpenAI-compatible server serving qwen2.5-7b (only its requests
go there). The Ollama nodes serve nomic-embed-text-v1.5 f16 too, dave-pc its q8_0; a vision
model each: the Ollama nodes gemma-3-12b, dave-pc qwen2.5-vl-7b; and a code model that fills in
the middle each: the Ollama nodes qwen2.5-coder-7b, dave-pc qwen2.5-coder-1.5b; and
the reasoning model gpt-oss-20b (mxfp4 on the Ollama nodes, q8_0 on dave-pc). Keys:
alice's and carol's default privacy is personal (their work stays on their nodes); bob's is public (his work runs anywhere) and bob has no node.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.gateway.gatewaykit import REASONING_MODELS, GatewayCluster, write_keys
from tests.live.clusterkit import REPO

KEYS = {
    "alice": {"key": "sk-alice-0001", "owner": "alice", "privacy": "personal", "account": "alice"},
    "bob": {"key": "sk-bob-000001", "owner": "bob", "privacy": "public", "tiers": ["local"]},
    "carol": {"key": "sk-carol-0001", "owner": "carol", "privacy": "personal"},
}
NODES = {"alice-mac": ("alice", 1), "carol-a": ("carol", 1), "carol-b": ("carol", 1)}
OPENAI_NODE = "dave-pc"
OLLAMA_EMBEDDING = ("nomic-embed-text:latest", {"parameter_size": "137M", "quantization_level": "F16"})
"""The embedding model the Ollama stand-ins serve too (the catalog's nomic-embed-text-v1.5 f16)."""
OPENAI_EMBEDDING = ("nomic-embed-text-v1.5.Q8_0.gguf", {})
"""The OpenAI-compatible stand-in's (q8_0: requests for that quant go to dave-pc only)."""
OLLAMA_VISION = ("gemma3:12b-it-q4_K_M", {"parameter_size": "12.2B", "quantization_level": "Q4_K_M"})
"""The vision model the Ollama stand-ins serve too (the catalog's gemma-3-12b q4_k_m)."""
OPENAI_VISION = ("Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", {})
"""The OpenAI-compatible stand-in's (the catalog's qwen2.5-vl-7b q4_k_m: dave-pc only)."""
OLLAMA_CODER = ("qwen2.5-coder:7b", {"parameter_size": "7.6B", "quantization_level": "Q4_K_M"})
"""A code model that fills in the middle, on the Ollama stand-ins (the catalog's qwen2.5-coder-7b)."""
OPENAI_CODER = ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", {})
"""The OpenAI-compatible stand-in's (qwen2.5-coder-1.5b: its requests go to dave-pc only)."""


def doc_keys() -> list[dict]:
    """The keys file of docs/gateway.md (the docs' examples run with its keys)."""
    text = (REPO / "docs" / "gateway.md").read_text(encoding="utf-8")
    return yaml.safe_load(re.search(r"```yaml\n(keys:.*?)```", text, re.DOTALL).group(1))["keys"]


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    c = GatewayCluster(tmp)
    try:
        # a node is lost after 10 silent report intervals (2 s), not 3 (0.6 s): the streaming
        # tests keep these processes busy, and on a loaded machine an agent's report was once
        # late by more than 0.6 s (node_lost in test_streams, load 8-14); the kill tests wait
        # for the loss on their condition, so it only takes them longer
        c.start_control("--task-timeout", "30", "--missed-reports", "10")
        for node, (owner, slots) in NODES.items():
            c.start_llm_agent(node, owner, slots, embedding=OLLAMA_EMBEDDING,
                              also=(OLLAMA_VISION, OLLAMA_CODER, REASONING_MODELS["ollama"]))
        c.start_llm_agent(OPENAI_NODE, "dave", 1, server="openai", embedding=OPENAI_EMBEDDING,
                          also=(OPENAI_VISION, OPENAI_CODER, REASONING_MODELS["openai"]))
        c.start_gateway(write_keys(tmp / "keys.yaml", [*KEYS.values(), *doc_keys()]), "--max-wait", "30",
                        "--request-timeout", "60")
        c.wait_models({*NODES, OPENAI_NODE})
        yield c
    finally:
        c.close()
