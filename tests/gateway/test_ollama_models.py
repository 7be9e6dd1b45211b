"""What apps ask an Ollama server about its models, with the `ollama` client against the
gateway and real agents: a load (``generate`` without a prompt, ``chat`` without messages,
``embed`` without input) or an unload (``keep_alive`` 0) is answered as Ollama answers it,
saying where the model is resident, and no task runs; ``keep_alive`` is taken on every route
and a bad one is a 400 naming it; a pull of a model the cluster serves succeeds, any other
model-management call is Ollama's error saying heddle does not download."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.gateway.conftest import KEYS, NODES
from tests.gateway.test_options import forget, llama
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import WORDS

PROMPT = [{"role": "user", "content": "Name a lantern."}]


def _post(cluster, path: str, body: dict, key: str | None = KEYS["bob"]["key"]) -> httpx.Response:
    return httpx.post(cluster.base_url + path, json=body, timeout=WAIT_S,
                      headers={"Authorization": f"Bearer {key}"} if key else {})


def test_loading_and_unloading_a_model_answers_as_ollama_and_runs_nothing(cluster):
    forget(cluster)
    client = llama(cluster)
    loaded = client.generate(model="llama-3.1-8b")
    assert (loaded.done, loaded.done_reason, loaded.response) == (True, "load", "")
    assert client.chat(model="llama3.1:8b-instruct-q4_K_M").done_reason == "load"
    assert client.generate(model="llama-3.1-8b", keep_alive=0).done_reason == "unload"
    unloaded = client.chat(model="llama-3.1-8b", messages=[], keep_alive="0s")
    assert (unloaded.done_reason, unloaded.message.role, unloaded.message.content) == ("unload", "assistant", "")
    streamed = list(client.generate(model="llama-3.1-8b", stream=True))  # one object, as Ollama sends
    assert [(p.done, p.done_reason) for p in streamed] == [(True, "load")]
    assert client.embed(model="nomic-embed-text").embeddings == []  # the client's default input: ""
    assert client.embeddings(model="nomic-embed-text", prompt="").embedding == []
    raw = _post(cluster, "/api/generate", {"model": "llama-3.1-8b", "keep_alive": "10m"}).json()
    assert raw["model"] == "llama-3.1-8b" and raw["created_at"].endswith("Z")
    assert set(raw["heddle"]["nodes"]) == set(NODES)  # where it is resident now: the Ollama nodes
    assert not any(s.requests for s in cluster.standins.values())  # no model server was asked

    # the checks a chat gets: the key, the model, the model's kind
    assert _post(cluster, "/api/chat", {"model": "llama-3.1-8b"}, key=None).status_code == 401
    assert _post(cluster, "/api/generate", {"model": "no-such-model"}).status_code == 404
    wrong = _post(cluster, "/api/generate", {"model": "nomic-embed-text"})
    assert wrong.status_code == 400 and "embedding model" in wrong.json()["error"]


def test_keep_alive_is_taken_on_a_chat_and_a_bad_one_is_a_400_naming_it(cluster):
    client = llama(cluster)
    for keep_alive in ("5m", "1h30m", -1, 300, "-1s"):
        reply = client.chat(model="llama-3.1-8b", messages=PROMPT, keep_alive=keep_alive)
        assert reply.message.content == "".join(WORDS)
    forget(cluster)
    for path, body in [("/api/chat", {"messages": PROMPT}), ("/api/generate", {"prompt": "hi"}),
                       ("/api/chat", {}), ("/api/embed", {"input": "hi"})]:
        for bad in ("soon", "5", True, {"minutes": 5}):
            reply = _post(cluster, path, {"model": "llama-3.1-8b" if path != "/api/embed"
                                          else "nomic-embed-text", **body, "keep_alive": bad})
            assert reply.status_code == 400, (path, bad, reply.text)
            assert reply.json()["error"].startswith('keep_alive: expected a duration such as "5m"')
    assert not any(s.requests for s in cluster.standins.values())


def test_pulling_a_served_model_succeeds_and_managing_models_is_refused_saying_why(cluster):
    client = llama(cluster)
    assert client.pull("llama-3.1-8b").status == "success"
    assert [p.status for p in client.pull("llama3.1:8b-instruct-q4_K_M", stream=True)] == ["success"]
    with pytest.raises(ollama.ResponseError) as missing:
        client.pull("qwen3:8b")
    assert missing.value.status_code == 501 and "heddle does not download" in missing.value.error
    with pytest.raises(ollama.ResponseError) as unserved:  # in the catalog, on no node
        client.pull("llama-3.1-70b")
    assert unserved.value.status_code == 501 and "not on the cluster's nodes" in unserved.value.error
    for call in (lambda: client.delete("llama-3.1-8b"), lambda: client.copy("llama-3.1-8b", "mine"),
                 lambda: client.push("llama-3.1-8b"), lambda: client.create("mine", from_="llama-3.1-8b"),
                 lambda: client.create_blob(__file__)):
        with pytest.raises(ollama.ResponseError) as refused:
            call()
        assert refused.value.status_code == 501, refused.value.error
        assert "models are installed on the cluster's nodes" in refused.value.error
    assert _post(cluster, "/api/pull", {"model": "llama-3.1-8b"}, key=None).status_code == 401
