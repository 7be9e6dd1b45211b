"""Embeddings through the gateway with the `openai` and `ollama` clients, against real agents
running stand-in Ollama and OpenAI-compatible servers: the vectors are the ones the server
computed, in input order, as floats or base64; a personal request runs on its owner's node;
the task's events carry counts, never the vectors; bad input is refused with 400 (or 413)
naming the field."""

from __future__ import annotations

import struct

import httpx
import ollama
import openai
import pytest

from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.test_gateway import client
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import EMBEDDING_DIMENSIONS, embedding_vector

TEXTS = [f"passage {i}: the heron waits by the river for the {i}th fish" for i in range(100)]
"""More vectors than fit in one message (768 numbers each): they come back in several chunks."""


def float32(vector: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def test_openai_client_gets_the_servers_vectors_in_order_as_floats_and_base64(cluster):
    gpt = client(cluster, "bob")  # public: q8_0 is served by dave-pc's OpenAI-compatible server
    reply = gpt.embeddings.create(model="nomic-embed-text-v1.5:q8_0", input=TEXTS, encoding_format="float")
    assert [d.index for d in reply.data] == list(range(len(TEXTS)))
    assert [d.embedding for d in reply.data] == [embedding_vector(t) for t in TEXTS]
    assert reply.usage.prompt_tokens == sum(len(t.split()) + 2 for t in TEXTS)  # the server's count
    where = reply.usage.model_extra["heddle"]
    assert where["node"] == OPENAI_NODE and where["backend"] == "openai"
    asked = cluster.standins[OPENAI_NODE].requests[-1]
    assert asked[0] == "/v1/embeddings" and asked[2]["input"] == TEXTS

    # the client's default: base64 (float32s), decoded by the client; and fewer dimensions
    short = gpt.embeddings.create(model="nomic-embed-text-v1.5:q8_0", input="one text", dimensions=64)
    assert short.data[0].embedding == float32(embedding_vector("one text", 64))
    assert cluster.standins[OPENAI_NODE].requests[-1][2]["dimensions"] == 64

    # the task's result (the durable log) counts the vectors; they are not in it
    task = where["task_id"]
    row = cluster.wait_task(task, "completed")
    assert row.result["embeddings"] == len(TEXTS) and row.result["dimensions"] == EMBEDDING_DIMENSIONS
    assert "embedding" not in str(row.result).replace("embeddings", "")
    assert row.result["output_tokens"] == 0


def test_ollama_client_embed_runs_a_personal_request_on_its_owners_node(cluster):
    llama = ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["alice"]["key"]})
    before = {node: len(s.requests) for node, s in cluster.standins.items()}
    for _ in range(3):  # carol's nodes serve the model too, and are free
        reply = llama.embed(model="nomic-embed-text", input=TEXTS[:5], truncate=False)
        assert [list(v) for v in reply.embeddings] == [embedding_vector(t) for t in TEXTS[:5]]
        assert reply.prompt_eval_count == sum(len(t.split()) + 2 for t in TEXTS[:5])
    one = llama.embed(model="nomic-embed-text-v1.5", input="a single text")
    assert [list(v) for v in one.embeddings] == [embedding_vector("a single text")]
    legacy = llama.embeddings(model="nomic-embed-text", prompt="the older route")
    assert list(legacy.embedding) == embedding_vector("the older route")
    grew = {node for node, s in cluster.standins.items() if len(s.requests) > before[node]}
    assert grew == {"alice-mac"}
    asked = cluster.standins["alice-mac"].requests[-3][2]
    assert asked["truncate"] is False and asked["input"] == TEXTS[:5]


def test_embedding_models_are_listed_and_shown_as_such(cluster):
    names = [m.id for m in client(cluster, "bob").models.list()]
    assert {"nomic-embed-text-v1.5:f16", "nomic-embed-text-v1.5:q8_0"} <= set(names)
    llama = ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})
    assert "nomic-embed-text-v1.5:f16" in [m.model for m in llama.list().models]
    assert llama.show("nomic-embed-text").capabilities == ["embedding"]


def _post(cluster, path: str, body: dict) -> httpx.Response:
    return httpx.post(cluster.base_url + path, json=body, timeout=WAIT_S,
                      headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})


def test_langchain_is_told_how_to_send_text(cluster):
    reply = _post(cluster, "/v1/embeddings", {"model": "nomic-embed-text", "input": [[9906, 1917]]})
    assert reply.status_code == 400 and "check_embedding_ctx_length=False" in reply.json()["error"]["message"]


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/v1/embeddings", {"input": [[1, 2, 3]]}, 400, "input"),
    ("/v1/embeddings", {"input": [1, 2, 3]}, 400, "input"),
    ("/v1/embeddings", {"input": []}, 400, "input"),
    ("/v1/embeddings", {"input": ["a", ""]}, 400, "input"),
    ("/v1/embeddings", {"input": ["a"] * 2049}, 400, "input"),
    ("/v1/embeddings", {"input": ["x" * 100_000] * 6}, 413, "input"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
    ("/v1/embeddings", {"input": "a", "dimensions": 0}, 400, "dimensions"),
    ("/api/embed", {"input": {"text": "a"}}, 400, "input"),
    ("/api/embed", {"input": "a", "truncate": "yes"}, 400, "truncate"),
    ("/api/embed", {"input": "a", "keep_alive": [5]}, 400, "keep_alive"),
    ("/api/embeddings", {"prompt": 5}, 400, "prompt"),
])
def test_bad_input_is_refused_naming_the_field(cluster, path, body, status, field):
    reply = _post(cluster, path, {"model": "nomic-embed-text", **body})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    assert message.startswith(f"{field}:"), message
    if path.startswith("/v1/"):
        assert error["param"] == field


def test_a_chat_with_an_embedding_model_and_embeddings_of_a_chat_offer_are_refused(cluster):
    with pytest.raises(openai.BadRequestError) as chat:
        client(cluster, "bob").chat.completions.create(
            model="nomic-embed-text", messages=[{"role": "user", "content": "hi"}])
    assert chat.value.body["param"] == "model" and "embedding model" in chat.value.message
    with pytest.raises(openai.BadRequestError) as cloud:
        client(cluster, "bob").embeddings.create(model="claude-haiku-4.5", input="hi")
    assert cloud.value.body["param"] == "model" and "no embeddings" in cloud.value.message


def test_inputs_up_to_the_size_bound_run(cluster):
    texts = [f"{i} " + "lantern " * 900 for i in range(60)]  # 432 KB of JSON: just under the bound (480 KiB)
    reply = client(cluster, "bob").embeddings.create(model="nomic-embed-text", input=texts,
                                                     encoding_format="float")
    assert [d.embedding for d in reply.data] == [embedding_vector(t) for t in texts]
