"""Images through the gateway, with the openai, ollama and anthropic clients, to the stand-in servers of
real agents (each answers with the SHA-256 and size of every image that reached it: the bytes
made it whole, in its protocol's shape); the refusals, each naming the field, with no task run;
and the images counted in the prompt the scheduler sizes (context window)."""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import ollama
import openai
import pytest

from heddle.gateway.images import MAX_IMAGE_BYTES, ImageSet, claude_image_tokens
from heddle.gateway.keys import Rules
from heddle.gateway.tasks import Chat, chat_task, count_tokens, resolve_model
from heddle.models.ids import Privacy
from tests.gateway.conftest import KEYS, NODES, OPENAI_NODE
from tests.gateway.imagekit import data_url, gif, jpeg, png, webp
from tests.gateway.test_gateway import client
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import image_words

PHOTO = png(64, 48)
ASK = "What is in this picture?"


def said(*images: bytes) -> str:
    return "".join(image_words(list(images)))


def asked(cluster, node: str, path: str) -> dict:
    """The last request of ``path`` the node's stand-in received."""
    return next(body for p, _, body in reversed(cluster.standins[node].requests) if p == path)


def counts(cluster) -> dict[str, int]:
    return {node: len(s.requests) for node, s in cluster.standins.items()}


def image_message(*urls: str, text: str = ASK) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         *[{"type": "image_url", "image_url": {"url": u, "detail": "auto"}}
                                           for u in urls]]}]


def test_openai_client_image_url_parts_reach_an_ollama_vision_model(cluster):
    reply = client(cluster, "bob").chat.completions.create(model="gemma-3-12b",
                                                           messages=image_message(data_url(PHOTO)))
    assert reply.choices[0].message.content == said(PHOTO)
    node = reply.usage.model_extra["heddle"]["node"]
    body = asked(cluster, node, "/api/chat")  # Ollama's shape: the text, the image in base64
    assert body["model"] == "gemma3:12b-it-q4_K_M"
    assert body["messages"][-1] == {"role": "user", "content": ASK,
                                    "images": [base64.b64encode(PHOTO).decode()]}
    # two images, streamed: both reach the server, in order
    photo, drawing = jpeg(1024, 768), webp(300, 200)
    with client(cluster, "bob").chat.completions.with_streaming_response.create(
            model="gemma-3-12b", stream=True,
            messages=image_message(data_url(photo, "image/jpeg"), data_url(drawing, "image/webp"))) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == said(photo, drawing)


def test_openai_client_image_url_parts_reach_an_openai_compatible_vision_model(cluster):
    animation = gif(32, 32)
    reply = client(cluster, "bob").chat.completions.create(
        model="qwen2.5-vl-7b", messages=image_message(data_url(PHOTO), data_url(animation, "image/gif")))
    assert reply.choices[0].message.content == said(PHOTO, animation)
    assert reply.usage.model_extra["heddle"]["node"] == OPENAI_NODE
    body = asked(cluster, OPENAI_NODE, "/v1/chat/completions")
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": ASK},
        {"type": "image_url", "image_url": {"url": data_url(PHOTO)}},
        {"type": "image_url", "image_url": {"url": data_url(animation, "image/gif")}}]


def test_ollama_client_images_of_a_personal_request_reach_only_its_owners_node(cluster):
    """alice's work is personal: it runs on alice-mac only, and so her images go there only
    (the gateway hands them to the node the task was placed on: test_image_access)."""
    before = counts(cluster)
    llama = ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["alice"]["key"]})
    parts = list(llama.chat(model="gemma3:12b-it-q4_K_M", stream=True,
                            messages=[{"role": "user", "content": ASK, "images": [PHOTO]}]))
    assert "".join(p.message.content for p in parts) == said(PHOTO) and parts[-1].done
    generated = llama.generate(model="gemma-3-12b", prompt=ASK, images=[PHOTO], stream=False)
    assert generated.response == said(PHOTO)
    grew = {node for node, n in counts(cluster).items() if n > before[node]}
    assert grew == {"alice-mac"}, f"{grew} of {sorted(NODES)}"
    assert asked(cluster, "alice-mac", "/api/chat")["messages"][-1]["images"] == [base64.b64encode(PHOTO).decode()]


def test_anthropic_client_image_blocks_reach_a_vision_model_and_count(cluster):
    """Claude Code and the anthropic SDK send images as ``image`` blocks (base64 source)."""
    claude = anthropic.Anthropic(base_url=cluster.base_url, api_key=KEYS["bob"]["key"], max_retries=0,
                                 timeout=WAIT_S)
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(PHOTO).decode()}}
    ask = [{"role": "user", "content": [block, {"type": "text", "text": ASK}]}]
    message = claude.messages.create(model="gemma-3-12b", max_tokens=64, messages=ask)
    assert [b.text for b in message.content] == [said(PHOTO)]
    node = message.usage.model_extra["heddle"]["node"]
    assert asked(cluster, node, "/api/chat")["messages"][-1] == {
        "role": "user", "content": ASK, "images": [base64.b64encode(PHOTO).decode()]}
    plain = claude.messages.count_tokens(model="gemma-3-12b", messages=[{"role": "user", "content": ASK}])
    counted = claude.messages.count_tokens(model="gemma-3-12b", messages=ask)
    assert counted.input_tokens == plain.input_tokens + 256  # Gemma 3: 256 tokens an image
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="llama-3.1-8b", max_tokens=64, messages=ask)
    assert refused.value.body["error"]["message"].startswith("messages.0.content.0: model llama-3.1-8b "
                                                             "does not take images")


def test_responses_api_input_image_parts_reach_a_vision_model(cluster):
    """Codex CLI and the Agents SDK send images as ``input_image`` parts."""
    response = client(cluster, "bob").responses.create(model="qwen2.5-vl-7b", input=[
        {"role": "user", "content": [{"type": "input_text", "text": ASK},
                                     {"type": "input_image", "image_url": data_url(PHOTO), "detail": "auto"}]}])
    assert response.output_text == said(PHOTO)
    assert asked(cluster, OPENAI_NODE, "/v1/chat/completions")["messages"][-1]["content"][1] == {
        "type": "image_url", "image_url": {"url": data_url(PHOTO)}}


def _post(cluster, path: str, body: dict) -> httpx.Response:
    return httpx.post(cluster.base_url + path, json=body, timeout=WAIT_S,
                      headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})


@pytest.mark.parametrize(("path", "body", "status", "field", "words"), [
    # an image for a model that cannot see: refused, not dropped in silence
    ("/v1/chat/completions", {"model": "llama-3.1-8b", "messages": image_message(data_url(PHOTO))},
     400, "messages.0.content.1", "does not take images"),
    ("/api/chat", {"model": "llama3.1:8b-instruct-q4_K_M",
                   "messages": [{"role": "user", "content": ASK, "images": [base64.b64encode(PHOTO).decode()]}]},
     400, "messages.0.images.0", "does not take images"),
    ("/api/generate", {"model": "llama-3.1-8b", "prompt": ASK, "images": [base64.b64encode(PHOTO).decode()]},
     400, "images.0", "does not take images"),
    # the gateway fetches nothing on a caller's behalf
    ("/v1/chat/completions", {"model": "gemma-3-12b", "messages": image_message("https://example.com/cat.png")},
     400, "messages.0.content.1", "send the image itself as a base64 data URL"),
    ("/v1/chat/completions", {"model": "gemma-3-12b", "messages": image_message("data:image/png;base64,%%%")},
     400, "messages.0.content.1", "not valid base64"),
    ("/v1/chat/completions", {"model": "gemma-3-12b", "messages": image_message(data_url(b"plain text, no image"))},
     400, "messages.0.content.1", "not a PNG, JPEG, WebP or GIF image"),
    ("/v1/chat/completions", {"model": "gemma-3-12b", "messages": image_message(data_url(PHOTO, "application/pdf"))},
     400, "messages.0.content.1", "not an image"),
    ("/api/chat", {"model": "gemma-3-12b", "messages": [{"role": "user", "content": ASK, "images": ["bm90IGFuIGltYWdl"]}]},
     400, "messages.0.images.0", "not a PNG, JPEG, WebP or GIF image"),
    ("/v1/chat/completions", {"model": "gemma-3-12b", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
     400, "messages.1.content.0", "type 'input_audio' are not supported"),
    ("/v1/chat/completions", {"model": "gemma-3-12b", "messages": [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": data_url(PHOTO)}}]}]},
     400, "messages.1.content.0", "images go in user messages"),
    ("/api/generate", {"model": "gemma-3-12b", "prompt": ASK, "raw": True,
                       "images": [base64.b64encode(PHOTO).decode()]}, 400, "images", "takes no images"),
])
def test_images_refused_name_the_field_and_run_no_task(cluster, path, body, status, field, words):
    before = counts(cluster)
    reply = _post(cluster, path, body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    message = error if isinstance(error, str) else error["message"]
    assert message.startswith(field + ":") and words in message, message
    if isinstance(error, dict):
        assert error["param"] == field
    assert counts(cluster) == before


def test_an_image_over_the_bound_is_a_413_naming_it(cluster):
    big = png(8, 8, pad=MAX_IMAGE_BYTES + 1)
    with pytest.raises(openai.APIStatusError) as refused:
        client(cluster, "bob").chat.completions.create(
            model="gemma-3-12b", messages=image_message(data_url(PHOTO), data_url(big)))
    assert refused.value.status_code == 413
    assert refused.value.body["param"] == "messages.0.content.2"
    assert f"at most {MAX_IMAGE_BYTES}" in refused.value.body["message"]


def test_images_count_in_the_prompt_the_scheduler_sizes(cluster):
    """qwen2.5-vl-7b: one token per 28 x 28 px, up to 16384 an image, in a 32768-token window:
    two large images do not fit, and the scheduler says so before any node runs them."""
    before = counts(cluster)
    wide, tall = jpeg(4000, 4000), jpeg(3999, 4000)
    reply = _post(cluster, "/v1/chat/completions", {
        "model": "qwen2.5-vl-7b", "messages": image_message(data_url(wide, "image/jpeg"),
                                                             data_url(tall, "image/jpeg"))})
    assert reply.status_code == 400 and "context" in reply.json()["error"]["message"], reply.text
    assert counts(cluster) == before


def test_the_task_carries_image_references_and_counts_their_tokens():
    """The task (what the control plane logs) names its images by digest; their bytes are not
    in it. Each model family's cost per image: Gemma 3 a fixed 256, Qwen2.5-VL one per 28 x 28
    px, Claude width x height / 750 (capped)."""
    images = ImageSet()
    images.add_url(data_url(jpeg(1120, 560), "image/jpeg"), "messages.0.content.1")
    messages = [{"role": "user", "content": ASK, "images": [0]}]
    rules = Rules("bob", Privacy.PUBLIC, None, None, None, 0.0)
    text = count_tokens(messages)
    for model, cost in (("gemma-3-12b", 256), ("qwen2.5-vl-7b", 40 * 20),
                        ("claude-sonnet-4.6", claude_image_tokens(1120, 560))):
        item = chat_task(Chat(resolve_model(model), messages, 64, images=tuple(images.images)),
                         rules, "gw-bob-0001", None)
        assert item.task.prompt_tokens == text + cost, model
        assert item.payload["images"] == [images.images[0].ref()]
        assert base64.b64encode(images.images[0].data).decode() not in json.dumps(item.payload)
    assert claude_image_tokens(1120, 560) == 837  # 1120 x 560 / 750, rounded up
