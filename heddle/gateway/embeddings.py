"""Embeddings on both protocols: OpenAI's ``POST /v1/embeddings``, Ollama's ``POST /api/embed``
and its older ``POST /api/embeddings``, answered in one reply each.

A request becomes one task through the same path as a chat (key, rules, placement, 429,
timeout, disconnect: `heddle.gateway.app.GatewayApp._answer`), of the requested model (an
embedding model sizes as the catalog says: prefill only), its inputs counted as a chat's
messages are, no output tokens, and the payload ``embed`` (heddle.live.backends.embed). The
agent sends the vectors back on the task's token subject (protocol 1.10: chunks under the
message size), never in its result: the task's events keep the counts only.

Size bounds: at most `MAX_INPUTS` inputs (OpenAI's own limit) and `MAX_INPUT_BYTES` of them
as JSON (the task must fit in one message): beyond either, a 400 (count) or 413 (size) naming
``input``. Token-id arrays (OpenAI's ``input`` of integers) are refused with a 400 naming
``input``: the gateway has no tokenizer of each model, and servers differ on taking them.

The replies are written by pydantic's JSON encoder (`to_json`): a tenth of json.dumps' time for
100 vectors of 768 numbers (5.6 ms against 56).
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any, ClassVar

from pydantic_core import to_json

from heddle.gateway.bodies import TaskBody
from heddle.gateway.errors import GatewayError
from heddle.gateway.ollama_models import KeepAlive
from heddle.gateway.run import TaskRun
from heddle.gateway.tasks import ModelRef
from heddle.live import protocol as wire
from heddle.models import catalog

__all__ = ["MAX_INPUTS", "MAX_INPUT_BYTES", "EmbedRequest", "OllamaEmbed", "OllamaEmbeddings", "OpenAIEmbeddings",
           "check_model", "ollama_embed_reply", "ollama_embeddings_reply", "openai_reply"]

MAX_INPUTS = 2048
"""Most inputs in one request (OpenAI's limit for ``/v1/embeddings``)."""
MAX_INPUT_BYTES = wire.MAX_MESSAGE_BYTES - 32 * 1024
"""Most bytes the inputs take as JSON: the task carrying them must fit in one message."""
NS = 1_000_000_000


def _bad(field: str, message: str, status: int = 400) -> GatewayError:
    return GatewayError.at(field, message, "invalid_request" if status == 400 else "request_too_large", status)


def _inputs(value: Any, field: str) -> list[str]:
    """A string or a non-empty list of strings -> the list; 400/413 naming ``field`` else."""
    texts = [value] if isinstance(value, str) else value
    if isinstance(texts, list) and texts and all((isinstance(t, int) and not isinstance(t, bool))
                                                 or isinstance(t, list) for t in texts):
        raise _bad(field, "token-id arrays are not supported (the gateway has no tokenizer of "
                   "each model): send the text, a string or a list of strings (LangChain's "
                   "OpenAIEmbeddings sends token ids unless check_embedding_ctx_length=False)")
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
        raise _bad(field, f"expected a string or a non-empty list of strings, got {_short(value)}")
    if not all(texts):
        raise _bad(field, "expected non-empty text (an input is an empty string)")
    if len(texts) > MAX_INPUTS:
        raise _bad(field, f"{len(texts)} inputs; at most {MAX_INPUTS} in one request")
    size = len(json.dumps(texts, ensure_ascii=False).encode())  # as the task's message has them
    if size > MAX_INPUT_BYTES:
        raise _bad(field, f"the inputs take {size} bytes as JSON; at most {MAX_INPUT_BYTES} fit in "
                   "one request (split them over several)", 413)
    return texts


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dimensions(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _bad("dimensions", f"expected a positive integer, got {_short(value)}")
    return value


class EmbedRequest(TaskBody):
    """What every embeddings route asks for: an embedding (`embedding`), in one reply."""

    embeds = True
    stream: ClassVar[bool] = False  # always one reply


class OpenAIEmbeddings(EmbedRequest):
    input: Any = None
    encoding_format: Any = None
    dimensions: Any = None

    def embedding(self) -> dict[str, Any]:
        if self.encoding_format not in (None, "float", "base64"):
            raise _bad("encoding_format", f"expected 'float' or 'base64', got {_short(self.encoding_format)}")
        return {"input": _inputs(self.input, "input"), "dimensions": _dimensions(self.dimensions)}


class _OllamaEmbed(EmbedRequest, KeepAlive):
    options: dict[str, Any] | None = None

    def _payload(self, texts: list[str], truncate: Any = True, dimensions: Any = None) -> dict[str, Any]:
        if not isinstance(truncate, bool):
            raise _bad("truncate", f"expected true or false, got {_short(truncate)}")
        return {"input": texts, "truncate": truncate, "dimensions": _dimensions(dimensions),
                "options": self.options or None}


class OllamaEmbed(_OllamaEmbed):
    input: Any = None
    truncate: Any = True
    dimensions: Any = None

    def load_only(self) -> str | None:
        return self._load_only(self.input in (None, "", []), unloads=False)

    def loaded(self, ref: ModelRef, reason: str, nodes: list[str]) -> dict[str, Any]:
        return {"model": ref.name, "embeddings": [], "heddle": {"nodes": nodes}}

    def embedding(self) -> dict[str, Any]:
        return self._payload(_inputs(self.input, "input"), self.truncate, self.dimensions)


class OllamaEmbeddings(_OllamaEmbed):
    """The older ``/api/embeddings``: one ``prompt``, one ``embedding``."""

    prompt: Any = None

    def load_only(self) -> str | None:
        return self._load_only(self.prompt in (None, ""), unloads=False)

    def loaded(self, ref: ModelRef, reason: str, nodes: list[str]) -> dict[str, Any]:
        return {"embedding": [], "heddle": {"nodes": nodes}}

    def embedding(self) -> dict[str, Any]:
        if not (isinstance(self.prompt, str) and self.prompt):
            raise _bad("prompt", f"expected non-empty text, got {_short(self.prompt)}")
        return self._payload([self.prompt])


def check_model(ref: ModelRef, embed: bool) -> None:
    """Embeddings of a cloud offer (none has an embeddings API), a chat with an embedding
    model (it generates nothing): 400 naming ``model``."""
    if embed and ref.quant is None:
        raise GatewayError(400, f"model: {ref.name} is a cloud API offer; it has no embeddings "
                           "(ask a local model, e.g. nomic-embed-text-v1.5)", "invalid_model",
                           param="model")
    if not embed and ref.quant is not None and catalog.model(ref.model).kind == "embedding":
        raise GatewayError(400, f"model: {ref.name} is an embedding model; it generates no text "
                           "(POST /v1/embeddings or /api/embed)", "invalid_model", param="model")


async def _vectors(run: TaskRun) -> list[tuple[float, ...]]:
    """The task's vectors, all of them in input order, or GatewayError saying what is missing."""
    async for _ in run.pieces():
        pass
    count, asked = run.reported("embeddings"), len((run.chat.embed or {}).get("input", ()))
    if count is None:
        raise GatewayError(502, f"node {run.node} answered without embeddings (is its agent older "
                           f"than protocol {wire.PROTOCOL_VERSION}?)", "task_failed")
    if len(run.vectors) != count or count != asked:
        raise GatewayError(502, f"{len(run.vectors)} of {asked} vectors reached the gateway from node "
                           f"{run.node} (lost in transit); retry the request", "vectors_lost")
    return run.vectors


def _base64(vector: tuple[float, ...]) -> str:
    """OpenAI's ``base64`` encoding: the vector's float32s, little-endian."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def openai_reply(run: TaskRun, encoding_format: str | None) -> bytes:
    vectors = await _vectors(run)
    encode = _base64 if encoding_format == "base64" else list
    prompt, _ = run.counts()
    return to_json({"object": "list", "model": run.chat.model.name,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt, "heddle": run.where()}})


async def ollama_embed_reply(run: TaskRun) -> bytes:
    started = time.monotonic()
    vectors = await _vectors(run)
    prompt, _ = run.counts()
    return to_json({"model": run.chat.model.name, "embeddings": vectors,
                    "total_duration": int((time.monotonic() - started) * NS), "load_duration": 0,
                    "prompt_eval_count": prompt, "heddle": run.where()})


async def ollama_embeddings_reply(run: TaskRun) -> bytes:
    return to_json({"embedding": (await _vectors(run))[0]})
