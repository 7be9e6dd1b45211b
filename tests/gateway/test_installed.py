"""Installed models: two Ollama nodes, each agent a separate process behind the gateway, both
serving llama-3.1-8b q4_k_m; only the second node's server has its q8_0 too. Neither has a
model loaded, so both would load it cold, and the first node wins a tie: without the rule a
q8_0 request lands there and fails (its server does not have it). With the agents reporting
what their servers have (protocol 1.14), every q8_0 request lands on the second node at its
first attempt, and one for a quant neither has is a 400 saying whose servers lack what."""

from __future__ import annotations

import openai
import pytest

from tests.gateway.gatewaykit import GatewayCluster, write_keys
from tests.live.clusterkit import WAIT_S

LACKS, HAS = "ann-a", "ann-b"
Q8 = ("llama3.1:8b-instruct-q8_0", {"parameter_size": "8.0B", "quantization_level": "Q8_0"})
KEY = {"key": "sk-pub-000001", "owner": "pub", "privacy": "public"}
ASK = [{"role": "user", "content": "Say hello."}]
ROUNDS = 6
"""q8_0 requests sent, each after the last has ended there (nothing running: both nodes load
it cold, and the first node wins the tie)."""


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    c = GatewayCluster(tmp_path_factory.mktemp("installed"))
    try:
        c.start_control()
        c.start_llm_agent(LACKS, "ann", 1)  # first: the tie-break's choice
        c.wait_models({LACKS})
        c.start_llm_agent(HAS, "ann", 1, also=(Q8,), cold=(Q8[0],))  # installed, not loaded: both load it cold
        c.wait_models({HAS})
        c.start_gateway(write_keys(c.tmp / "keys.yaml", [KEY]), "--max-wait", "30")
        c.wait_models({LACKS, HAS})
        yield c
    finally:
        c.close()


def _client(c: GatewayCluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=c.base_url + "/v1", api_key=KEY["key"], max_retries=0, timeout=WAIT_S)


def test_requests_for_a_quant_one_server_has_always_land_on_its_node(two):
    client = _client(two)
    landed = []
    for _ in range(ROUNDS):
        two.wait_idle(HAS)
        reply = client.chat.completions.with_raw_response.create(model="llama-3.1-8b:q8_0", messages=ASK,
                                                                 max_tokens=8)
        where = reply.parse().usage.model_extra["heddle"]
        landed.append((reply.headers["x-heddle-node"], where["node"], where["attempt"]))
    assert landed == [(HAS, HAS, 1)] * ROUNDS, landed
    plain = client.chat.completions.with_raw_response.create(model="llama-3.1-8b:q4_k_m", messages=ASK,
                                                             max_tokens=8)
    assert plain.headers["x-heddle-node"] in {LACKS, HAS}  # both have this one


def test_a_quant_no_server_has_gets_400_naming_whose_servers_lack_it(two):
    with pytest.raises(openai.BadRequestError) as refused:
        _client(two).chat.completions.create(model="llama-3.1-8b:f16", messages=ASK, max_tokens=8)
    message = refused.value.body["message"]
    assert refused.value.body["code"] == "cannot_place", message
    assert f"model: the servers of {LACKS}, {HAS} do not have llama-3.1-8b f16 (2)" in message, message
