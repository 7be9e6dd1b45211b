"""A mixed fleet serving one model: a Mac on MLX (no tool calls, no embeddings: its backend
declares so) and a Linux box on Ollama, both serving llama-3.1-8b q4_0, each agent a
separate process behind the gateway. The Mac is the faster machine, so plain chats go there;
a tool call goes to the Linux box every time (a random or a speed-first choice would send it
to the Mac), and a request nowhere can run is a 400 saying which need and who lacks it."""

from __future__ import annotations

import openai
import pytest

from tests.gateway.gatewaykit import GatewayCluster, write_keys
from tests.live.clusterkit import WAIT_S

MAC, PC = "mia-mac", "olly-pc"
MODEL = "llama-3.1-8b:q4_0"  # what both serve (the MLX stand-in's 4-bit model is the catalog's q4_0)
KEYS = {
    "mia": {"key": "sk-mia-000001", "owner": "mia", "privacy": "personal"},  # her work: her Mac only
    "pub": {"key": "sk-pub-000001", "owner": "pub", "privacy": "public"},  # anywhere
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather forecast for a city.",
    "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}
ASK = [{"role": "user", "content": "What will the weather be in Lisbon?"}]
ROUNDS = 8
"""Tool calls sent (with a plain chat before each): all on the Linux box, where a coin would
put all eight there once in 256 runs and the speed-first choice never."""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    c = GatewayCluster(tmp_path_factory.mktemp("features"))
    try:
        c.start_control()
        c.start_mlx_agent(MAC, "mia", device="m4-pro-20")  # first, and the faster machine
        c.wait_models({MAC})  # (no gateway yet: active in the control plane's fleet)
        c.start_llm_agent(PC, "olly", 1, model="llama3.1:8b-instruct-q4_0")
        c.wait_models({PC})
        c.start_gateway(write_keys(c.tmp / "keys.yaml", list(KEYS.values())), "--max-wait", "30")
        c.wait_models({PC})  # the gateway lists it as serving (the Mac: once it has loaded)
        yield c
    finally:
        c.close()


def _client(c: GatewayCluster, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=c.base_url + "/v1", api_key=KEYS[who]["key"], max_retries=0, timeout=WAIT_S)


def _ran(reply) -> tuple[str, str, int]:
    """(node, backend, attempt: 1 for the first) the answer names."""
    where = reply.usage.model_extra["heddle"]
    return where["node"], where["backend"], where["attempt"]


def test_tool_calls_always_land_on_the_node_whose_backend_runs_them(mixed):
    mine = _client(mixed, "mia").chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
    assert _ran(mine) == (MAC, "mlx", 1)  # her Mac answers a chat (and has the model loaded now)
    public = _client(mixed, "pub")
    chats, calls = [], []
    for _ in range(ROUNDS):
        chat = public.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=8)
        chats.append((chat.headers["x-heddle-node"], _ran(chat.parse())))
        call = public.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, tools=[WEATHER],
                                                                max_tokens=8)
        calls.append((call.headers["x-heddle-node"], _ran(call.parse())))
    assert (MAC, (MAC, "mlx", 1)) in chats, chats  # the Mac is a real candidate: plain chats go there
    assert calls == [(PC, (PC, "ollama", 1))] * ROUNDS, calls  # first attempts, none refused by MLX


@pytest.mark.parametrize(("route", "need"), [("chat", "tools"), ("embeddings", "embeddings")])
def test_a_request_no_node_can_run_gets_400_with_the_need_and_who_lacks_it(mixed, route, need):
    mine = _client(mixed, "mia")  # personal: only her Mac may run it, and MLX does neither
    with pytest.raises(openai.BadRequestError) as refused:
        if route == "chat":
            mine.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=8)
        else:
            mine.embeddings.create(model=MODEL, input=["a text to embed"])
    message = refused.value.body["message"]
    assert refused.value.body["code"] == "cannot_place", message
    assert "no target can ever run it" in message and "privacy" in message, message  # the PC is not hers
    words = {"tools": "tool calls", "embeddings": "embeddings"}[need]
    assert f"{need}: {MAC} on mlx does not run {words} for llama-3.1-8b (1)" in message, message
