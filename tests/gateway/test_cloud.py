"""A catalog API offer named as the model (``claude-sonnet-4.6``) through the gateway: a
cluster whose control plane's fleet file offers it with a budget, one agent holding an
Anthropic key (its Claude API a stand-in speaking the Messages API on loopback) and the
gateway listing the offer (``--cloud``). The `openai` and `ollama` clients ask for the offer
and get the stand-in's answer streamed, the usage naming the offer and the agent that called
it (also in the headers: X-Heddle-Offer, X-Heddle-Node); the `anthropic` client (as Claude
Code) names it as Anthropic's API does and gets Claude's tool use back; personal work asking
for it is the protocol's 400 with the privacy reason, a key limited to the local tier a 403
naming the offer's tier, and nothing is called; an image reaches the Messages API as an
``image`` block."""

from __future__ import annotations

import base64

import anthropic
import httpx
import ollama
import openai
import pytest

from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from tests.gateway.gatewaykit import GatewayCluster, write_keys
from tests.gateway.imagekit import data_url, png
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import (
    THOUGHTS,
    TOOL_ARGUMENTS,
    WORDS,
    Plan,
    anthropic_stream,
    image_words,
)

TEXT = "".join(WORDS)
PROMPT = [{"role": "user", "content": "Say five Greek letters."}]
OFFER = "claude-sonnet-4.6"
FLEET = f"""name: cloud
cloud_offers: [{OFFER}, claude-haiku-4.5]
budgets:
  team: {{limit_usd: 20, period: week}}
nodes:
  - {{id: relay, device: m1-8, memory_gb: 16, owner: bob}}
"""
"""The control plane's terms (the nodes come from the agents): two API offers of one tier,
haiku the cheaper, so a request naming sonnet landing on sonnet is the model rule's doing."""
KEYS = {
    "bob": {"key": "sk-bob-cloud1", "owner": "bob", "privacy": "public", "account": "team"},
    "alice": {"key": "sk-alice-cld1", "owner": "alice", "privacy": "personal", "account": "team"},
    "carol": {"key": "sk-carol-cld1", "owner": "carol", "privacy": "public", "account": "team",
              "tiers": ["local"]},
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cloud")
    (tmp / "fleet.yaml").write_text(FLEET, encoding="utf-8")
    c = GatewayCluster(tmp)
    try:
        c.start_control("--fleet", str(tmp / "fleet.yaml"))
        c.start_claude_agent("relay", "bob")
        c.start_gateway(write_keys(tmp / "keys.yaml", list(KEYS.values())), "--cloud", OFFER,
                        "--max-wait", "30", "--request-timeout", "60")

        async def offered(client):
            return any(n.node_id == "relay" and n.status == "active" for n in (await client.fleet()).nodes)

        c.wait_until(lambda: c.query(offered), "the Claude agent active")
        yield c
    finally:
        c.close()


def client(cluster: GatewayCluster, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=cluster.base_url + "/v1", api_key=KEYS[who]["key"], max_retries=0,
                         timeout=WAIT_S)


def test_the_openai_client_asking_for_a_claude_offer_gets_its_answer_streamed(cloud):
    standin = cloud.standins["relay"]
    with client(cloud, "bob").chat.completions.with_streaming_response.create(
            model=OFFER, messages=PROMPT, max_tokens=64, stream=True,
            stream_options={"include_usage": True}) as raw:
        node, offer = raw.headers["x-heddle-node"], raw.headers.get("x-heddle-offer")
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    where = chunks[-1].usage.model_extra["heddle"]
    assert node == where["node"] == "relay" and where["backend"] == "claude"  # the agent that called it
    assert offer == where["offer"] == OFFER  # the cloud target: not the cheaper haiku of the same tier
    assert where["cost_usd"] == pytest.approx(api_cost_usd(catalog.offer(OFFER), 20, len(WORDS)))
    assert chunks[-1].usage.completion_tokens == len(WORDS)
    path, _, body = standin.requests[-1]
    assert path == "/v1/messages" and body["model"] == "claude-sonnet-4-6"
    assert body["messages"][-1]["content"] in (PROMPT[0]["content"], [{"type": "text", "text": PROMPT[0]["content"]}])
    assert body["max_tokens"] == 64
    # charged to bob's account
    task = cloud.wait_task(raw.headers["x-heddle-task"], "completed")
    assert task.result["offer"] == OFFER and task.result["account"] == "team"
    assert task.result["cost_usd"] == pytest.approx(api_cost_usd(catalog.offer(OFFER), 20, len(WORDS)))


def test_the_ollama_client_asking_for_a_claude_offer_gets_its_answer_streamed(cloud):
    llama = ollama.Client(host=cloud.base_url, headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})
    parts = list(llama.chat(model=OFFER, messages=PROMPT, stream=True))
    assert "".join(p.message.content for p in parts) == TEXT and parts[-1].done
    assert parts[-1].eval_count == len(WORDS)
    assert cloud.standins["relay"].requests[-1][0] == "/v1/messages"
    # the closing object's heddle block (the client keeps only its own fields): where it ran
    reply = httpx.post(cloud.base_url + "/api/chat", timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                       json={"model": OFFER, "messages": PROMPT, "stream": False})
    assert reply.status_code == 200 and reply.json()["message"]["content"] == TEXT
    assert reply.json()["heddle"]["offer"] == OFFER and reply.json()["heddle"]["node"] == "relay"
    assert (reply.headers["x-heddle-offer"], reply.headers["x-heddle-node"]) == (OFFER, "relay")


def test_personal_work_asking_for_a_claude_offer_is_a_400_naming_privacy(cloud):
    standin = cloud.standins["relay"]
    calls = len(standin.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client(cloud, "alice").chat.completions.create(model=OFFER, messages=PROMPT)
    assert refused.value.status_code == 400 and refused.value.code == "cannot_place"
    assert "privacy" in refused.value.message, refused.value.message
    with pytest.raises(openai.BadRequestError, match="privacy"):  # tightened by a header, likewise
        client(cloud, "bob").chat.completions.create(model=OFFER, messages=PROMPT,
                                                    extra_headers={"X-Heddle-Privacy": "sensitive"})
    assert len(standin.requests) == calls  # the Claude API was never called


def test_a_key_of_local_tiers_naming_a_claude_offer_is_refused_its_tier(cloud):
    standin = cloud.standins["relay"]
    calls = len(standin.requests)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(cloud, "carol").chat.completions.create(model=OFFER, messages=PROMPT)
    assert refused.value.code == "tier_not_allowed" and "standard-tier" in refused.value.message
    assert len(standin.requests) == calls


WEATHER = {"name": "get_weather", "description": "The weather forecast for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_the_anthropic_client_naming_the_offer_as_claude_code_does_gets_claude_through_the_rules(cloud):
    """Claude Code pointed at the cluster names the model as Anthropic's API does
    (claude-sonnet-4-6): the offer runs under the key's rules and budget, its tool use and
    stop reasons come back as Claude gave them, and the Claude API gets the conversation back
    in its own shape (tool_use and tool_result blocks, input_schema)."""
    standin = cloud.standins["relay"]
    claude = anthropic.Anthropic(base_url=cloud.base_url, api_key=KEYS["bob"]["key"], max_retries=0, timeout=WAIT_S)
    ask = [{"role": "user", "content": "What will the weather be in Lisbon?"}]
    asked = {"model": "claude-sonnet-4-6", "max_tokens": 200, "tools": [WEATHER], "system": "Be brief."}
    with claude.messages.stream(messages=ask, **asked) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use" and message.model == "claude-sonnet-4-6"
    (call,) = message.content
    assert (call.id, call.name, call.input) == ("toolu_standin_1", "get_weather", TOOL_ARGUMENTS)
    history = [*ask, {"role": "assistant", "content": message.content},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]}]
    answer = claude.messages.create(messages=history, **asked)
    assert [b.text for b in answer.content] == [TEXT] and answer.stop_reason == "end_turn"
    where = answer.usage.model_extra["heddle"]
    assert (where["offer"], where["node"], where["backend"]) == (OFFER, "relay", "claude")
    path, _, body = standin.requests[-1]
    assert path == "/v1/messages" and body["model"] == "claude-sonnet-4-6" and body["system"] == "Be brief."
    assert body["tools"] == [WEATHER] and body["max_tokens"] == 200
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": "get_weather",
                                           "input": TOOL_ARGUMENTS}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]}]

    personal = anthropic.Anthropic(base_url=cloud.base_url, api_key=KEYS["alice"]["key"], max_retries=0)
    calls = len(standin.requests)
    with pytest.raises(anthropic.BadRequestError) as refused:
        personal.messages.create(messages=ask, **asked)
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "privacy" in refused.value.body["error"]["message"] and len(standin.requests) == calls


def test_claude_stopping_at_max_tokens_is_each_protocols_cut_short(cloud):
    """Claude's stop reason ``max_tokens`` is OpenAI's finish_reason ``length`` (the Responses
    API's status ``incomplete``), Ollama's done_reason ``length`` and Anthropic's
    ``max_tokens`` (it was "stop" on the first two)."""
    standin = cloud.standins["relay"]
    standin.plans.extend(Plan(chunks=[c.replace(b'"end_turn"', b'"max_tokens"')
                                      for c in anthropic_stream("claude-sonnet-4-6")]) for _ in range(4))
    assert client(cloud, "bob").chat.completions.create(
        model=OFFER, messages=PROMPT, max_tokens=5).choices[0].finish_reason == "length"
    cut = client(cloud, "bob").responses.create(model=OFFER, input=PROMPT, max_output_tokens=5)
    assert (cut.status, cut.incomplete_details.reason) == ("incomplete", "max_output_tokens")
    llama = ollama.Client(host=cloud.base_url, headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})
    assert llama.chat(model=OFFER, messages=PROMPT, options={"num_predict": 5}).done_reason == "length"
    claude = anthropic.Anthropic(base_url=cloud.base_url, api_key=KEYS["bob"]["key"], max_retries=0, timeout=WAIT_S)
    assert claude.messages.create(model=OFFER, messages=PROMPT, max_tokens=5).stop_reason == "max_tokens"


def test_an_image_for_a_claude_offer_reaches_the_messages_api_as_an_image_block(cloud):
    photo = png(64, 48)
    reply = client(cloud, "bob").chat.completions.create(model=OFFER, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": data_url(photo)}}]}])
    assert reply.choices[0].message.content == "".join(image_words([photo]))
    path, _, body = cloud.standins["relay"].requests[-1]
    assert path == "/v1/messages" and body["messages"][-1]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(photo).decode()}},
        {"type": "text", "text": "What is this?"}]


def test_claudes_extended_thinking_streams_as_reasoning_content_with_a_budget_of_the_bound(cloud):
    standin = cloud.standins["relay"]
    stream = client(cloud, "bob").chat.completions.create(
        model=OFFER, messages=PROMPT, max_tokens=4000, reasoning_effort="high", stream=True)
    thinking, text = [], []
    for chunk in stream:
        for choice in chunk.choices:
            thinking.append(getattr(choice.delta, "reasoning_content", None) or "")
            text.append(choice.delta.content or "")
            assert not (thinking[-1] and "".join(text))  # no thinking after the answer began
    assert "".join(thinking) == "".join(THOUGHTS) and "".join(text) == TEXT
    body = standin.requests[-1][2]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3200}  # high: 80% of 4000
    assert body["max_tokens"] == 4000


def test_claude_code_asking_a_claude_offer_to_think_gets_its_budget_through_and_the_thinking_back(cloud):
    """The request's budget becomes the task's level (its share of max_tokens), which the
    Claude backend turns back into the same budget; Claude's thinking comes back as a block."""
    claude = anthropic.Anthropic(base_url=cloud.base_url, api_key=KEYS["bob"]["key"], max_retries=0, timeout=WAIT_S)
    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=4000, messages=PROMPT,
                                     thinking={"type": "enabled", "budget_tokens": 2000})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert (message.content[0].thinking, message.content[1].text) == ("".join(THOUGHTS), TEXT)
    path, _, body = cloud.standins["relay"].requests[-1]
    assert path == "/v1/messages" and body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
