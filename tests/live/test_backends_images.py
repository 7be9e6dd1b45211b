"""A chat's images reach each server in its shape (the stand-ins answer with the digest and
size of every image they got): Ollama's message ``images``, OpenAI-compatible ``image_url``
parts, Claude's ``image`` blocks; MLX in-process refuses naming itself; a message whose images
were never fetched fails the attempt rather than running without them."""

from __future__ import annotations

import base64

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from tests.gateway.imagekit import jpeg, png
from tests.live.backendkit import assignment, close, harness
from tests.live.llmstandin import image_words

PHOTO, SCAN = png(16, 16), jpeg(800, 600)
FETCHED = {"role": "user", "content": "What are these?", "images": [
    {"media_type": "image/png", "data": base64.b64encode(PHOTO).decode()},
    {"media_type": "image/jpeg", "data": base64.b64encode(SCAN).decode()}]}


@pytest.mark.parametrize("name", ["ollama", "openai", "claude"])
async def test_each_server_gets_the_images_in_its_shape(name):
    h = harness(name)
    try:
        result = await h.executor.run(assignment(payload={"messages": [FETCHED]}, **h.task), Progress())
        assert result["text"] == "".join(image_words([PHOTO, SCAN]))
    finally:
        await close(h)


@pytest.mark.parametrize("name", ["ollama", "mlx"])
async def test_images_never_fetched_or_not_supported_fail_the_attempt(name):
    h = harness(name)
    try:
        if name == "mlx":
            with pytest.raises(ExecutionError, match="mlx at in-process:.*images are not supported .mlx-lm runs text models"):
                await h.executor.run(assignment(payload={"messages": [FETCHED]}, **h.task), Progress())
        else:
            unfetched = {"role": "user", "content": "What is it?", "images": [0]}
            with pytest.raises(ExecutionError, match="images were not fetched"):
                await h.executor.run(assignment(payload={"messages": [unfetched]}, **h.task), Progress())
        assert h.calls() == 0
    finally:
        await close(h)
