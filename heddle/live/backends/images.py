"""Images in a chat's messages, in each server's shape.

The task's payload names its images by reference (``images``: sha256, media type, size) and
each user message that has some lists their indices under ``images``; the agent fetches the
bytes from the gateway before the backend runs (heddle.live.agent.images), after which a
message's ``images`` are ``[{"media_type", "data"}]`` (``data``: base64). Here they become what
each server takes: Ollama's message ``images`` (base64 strings), OpenAI-compatible
``image_url`` content parts (data URLs), Claude's ``image`` content blocks (base64 source).
MLX in-process has no vision (mlx-vlm is not a dependency): it lacks the ``images`` feature
(heddle.live.features), so such a task is never placed there, and it refuses one that comes.
"""

from __future__ import annotations

from typing import Any

from heddle.live.agent.executors import ExecutionError

__all__ = ["IMAGES_KEY", "claude_images", "has_images", "ollama_images", "openai_images"]

IMAGES_KEY = "images"
"""The payload's image references, and a message's images (indices, then fetched images)."""


def has_images(messages: list[dict[str, Any]]) -> bool:
    return any(m.get(IMAGES_KEY) for m in messages)


def _fetched(m: dict[str, Any]) -> list[dict[str, str]]:
    images = m[IMAGES_KEY]
    if not all(isinstance(i, dict) and "data" in i for i in images):
        raise ExecutionError("llm: a message's images were not fetched (is this agent older than "
                             "protocol 1.11?)")
    return images


def _rewritten(messages: list[dict[str, Any]], shape: Any) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m.get(IMAGES_KEY):
            m = shape({k: v for k, v in m.items() if k != IMAGES_KEY}, _fetched(m))
        else:
            m = {k: v for k, v in m.items() if k != IMAGES_KEY}
        out.append(m)
    return out


def ollama_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's ``/api/chat``: a message's ``images`` are base64 strings."""
    if not has_images(messages):
        return messages
    return _rewritten(messages, lambda m, images: {**m, IMAGES_KEY: [i["data"] for i in images]})


def openai_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-compatible servers: the text, then an ``image_url`` part (a data URL) per image."""
    if not has_images(messages):
        return messages
    return _rewritten(messages, lambda m, images: {**m, "content": (
        [{"type": "text", "text": m["content"]}] * bool(m.get("content"))
        + [{"type": "image_url", "image_url": {"url": f"data:{i['media_type']};base64,{i['data']}"}}
           for i in images])})


def claude_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Messages API: an ``image`` block (base64 source) per image, then the text (images
    before the text, as Anthropic's docs advise)."""
    if not has_images(messages):
        return messages
    return _rewritten(messages, lambda m, images: {**m, "content": (
        [{"type": "image", "source": {"type": "base64", "media_type": i["media_type"], "data": i["data"]}}
         for i in images]
        + [{"type": "text", "text": m["content"]}] * bool(m.get("content")))})
