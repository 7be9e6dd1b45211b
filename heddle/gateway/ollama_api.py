"""The Ollama routes: ``POST /api/chat`` and ``/api/generate`` (NDJSON streaming by default,
one JSON object with ``"stream": false``), ``GET /api/tags`` (what the cluster serves now),
``GET /api/ps`` (the same, as models loaded), ``POST /api/show`` (a model's details from the
catalog: apps such as editors read its context length there) and ``GET /api/version``.

Honoured fields: ``model``, ``messages`` / ``prompt`` (+ ``system``), ``stream``,
``options.num_predict`` (the output bound), the generation options of heddle.gateway.options
(``options.temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``, ... and ``format``), which
reach the model server, ``tools`` with the messages' ``tool_calls`` and tool results
(`heddle.gateway.tools`), ``images`` (base64, on a user message or a generate request) for
a model that takes images (`heddle.gateway.images`), and ``think`` (heddle.gateway.thinking: a
reasoning model's thinking comes back as ``thinking``). Other options are accepted and not
passed on. ``/api/generate`` with
``raw: true`` or a ``suffix`` (fill in the middle: editors' autocomplete) is a completion task,
its prompt sent to the model server as it is (heddle.live.backends.completion); without them,
the prompt is the one user message of a chat (the model's template around it, as Ollama does).
A ``template`` of the caller's own is refused (400 naming it: the server's is used). Unknown
fields are ignored, as Ollama does. A chat with no messages or a generate with no prompt asks
only to load (or, with ``keep_alive`` 0, unload) the model: heddle.gateway.ollama_models.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from heddle.gateway.errors import GatewayError
from heddle.gateway.images import IMAGES_KEY, ImageSet, attach
from heddle.gateway.ollama_models import KeepAlive, now
from heddle.gateway.options import completion, ollama_generation, unhonoured
from heddle.gateway.run import TaskRun, Thought
from heddle.gateway.tasks import ModelRef
from heddle.gateway.thinking import can_think
from heddle.gateway.tools import OllamaTools, ToolMessage, ollama_calls, ollama_messages
from heddle.live.backends.generation import Generation
from heddle.models import catalog

__all__ = ["OllamaChat", "OllamaGenerate", "OllamaShow", "error_line", "ollama_lines", "ollama_reply",
           "ps_reply", "show_reply", "tags_reply"]

NS = 1_000_000_000


class _Message(ToolMessage):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | None = ""
    images: list[Any] | None = None

    def text(self) -> str:
        return self.content or ""

    def found(self, i: int, images: ImageSet) -> list[int]:
        return [images.add_base64(image, f"messages.{i}.images.{j}")
                for j, image in enumerate(self.images or ())]


class _Base(KeepAlive):
    stream: bool = True
    options: dict[str, Any] | None = None
    system: str | None = None
    format: Any = None
    think: Any = None

    def generation(self) -> Generation:
        return ollama_generation(self.options, self.format, self.think)

    def output_bound(self) -> int | None:
        value = (self.options or {}).get("num_predict")
        if value is None or value == -1:  # -1: Ollama's "no limit"; heddle needs a bound
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GatewayError(400, f"options.num_predict: expected a positive integer, got "
                               f"{value!r}", "invalid_options", param="options.num_predict")
        return value


class OllamaChat(_Base, OllamaTools):
    messages: list[_Message] = Field(default_factory=list)
    _images: ImageSet = PrivateAttr(default_factory=ImageSet)

    def load_only(self) -> str | None:
        return self._load_only(not self.messages)

    def loaded(self, ref: ModelRef, reason: str, nodes: list[str]) -> dict[str, Any]:
        return {"model": ref.name, "created_at": now(), "message": {"role": "assistant", "content": ""},
                "done": True, "done_reason": reason, "heddle": {"nodes": nodes}}

    def chat_messages(self) -> tuple[list[dict[str, str]], str | None]:
        system = "\n\n".join([self.system] * bool(self.system)
                             + [m.text() for m in self.messages if m.role == "system"])
        messages = ollama_messages(self.messages, _Message.text)
        attach(messages, self.messages, self._images, lambda i, m, images: m.found(i, images),
               skipped=("system",))
        return messages, system or None

    def image_set(self) -> ImageSet:
        return self._images


class OllamaShow(BaseModel):
    """``POST /api/show``'s body: ``model`` (older clients send ``name``)."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    name: str = ""

    def asked(self) -> str:
        if not (self.model or self.name):
            raise GatewayError(400, "model: expected a model name", "invalid_request", param="model")
        return self.model or self.name


class OllamaGenerate(_Base):
    prompt: str = ""
    suffix: Any = None
    raw: Any = None
    template: Any = None
    images: list[Any] | None = None
    _images: ImageSet = PrivateAttr(default_factory=ImageSet)

    def load_only(self) -> str | None:
        return self._load_only(not (self.prompt or self.suffix))

    def loaded(self, ref: ModelRef, reason: str, nodes: list[str]) -> dict[str, Any]:
        return {"model": ref.name, "created_at": now(), "response": "", "done": True,
                "done_reason": reason, "heddle": {"nodes": nodes}}

    def completion(self) -> dict[str, Any] | None:
        unhonoured(self, ("template",))
        done = completion(self.prompt, self.suffix, self.raw, self.system)
        if done is not None and self.images:
            raise GatewayError(400, "images: a raw prompt or one with a suffix takes no images "
                               "(send them without raw and suffix: the model's template places them)",
                               "invalid_image", param="images")
        return done

    def chat_messages(self) -> tuple[list[dict[str, str]], str | None]:
        message: dict[str, Any] = {"role": "user", "content": self.prompt}  # not empty: `load_only`
        if self.images:
            message[IMAGES_KEY] = [self._images.add_base64(image, f"images.{j}")
                                   for j, image in enumerate(self.images)]
        return [message], self.system

    def image_set(self) -> ImageSet:
        return self._images


def _piece(run: TaskRun, text: str, generate: bool, thinking: str | None = None) -> dict[str, Any]:
    """A line of the stream: a piece of the answer, or of the model's thinking (``thinking``,
    the answer's piece empty then, as Ollama sends it)."""
    also = {} if thinking is None else {"thinking": thinking}
    if generate:
        return {"model": run.chat.model.name, "created_at": now(), "response": text, **also,
                "done": False}
    return {"model": run.chat.model.name, "created_at": now(),
            "message": {"role": "assistant", "content": text, **also}, "done": False}


def _closing(run: TaskRun, generate: bool, text: str, started: float,
             thinking: str | None = None) -> dict[str, Any]:
    prompt, completion = run.counts()
    doc = _piece(run, text, generate, thinking)
    doc.update({
        "done": True, "done_reason": "length" if run.cut_at_bound() else "stop",
        "total_duration": int((time.monotonic() - started) * NS), "load_duration": 0,
        "prompt_eval_count": prompt, "eval_count": completion,
        "eval_duration": int((run.reported("duration_s") or 0.0) * NS), "heddle": run.where(),
    })
    return doc


def error_line(exc: GatewayError) -> bytes:
    """A failure mid-stream: an ``{"error": ...}`` line (the stream's last), as Ollama sends."""
    return json.dumps(exc.ollama()).encode() + b"\n"


async def ollama_lines(run: TaskRun, generate: bool):
    """NDJSON lines; a failure mid-stream raises GatewayError (the stream then ends with
    `error_line`, as Ollama sends: `app._Request.stream`). The model's tool calls go on a
    line of their own before the closing one, as Ollama sends them; its thinking in lines of
    ``thinking`` (``message.thinking`` in a chat), as Ollama streams it."""
    started = time.monotonic()
    run.show_thinking = True
    async for text in run.pieces():
        if type(text) is Thought:
            yield json.dumps(_piece(run, "", generate, text)).encode() + b"\n"
        else:
            yield json.dumps(_piece(run, text, generate)).encode() + b"\n"
    closing = json.dumps(_closing(run, generate, "", started)).encode() + b"\n"
    if run.tool_calls and not generate:
        calls = _piece(run, "", generate)
        calls["message"]["tool_calls"] = ollama_calls(run.tool_calls)
        closing = json.dumps(calls).encode() + b"\n" + closing
    yield closing


async def ollama_reply(run: TaskRun, generate: bool) -> dict[str, Any]:
    started = time.monotonic()
    async for _ in run.pieces():
        pass
    doc = _closing(run, generate, run.output_text, started, run.thinking_text)
    if run.tool_calls and not generate:
        doc["message"]["tool_calls"] = ollama_calls(run.tool_calls)
    return doc


def _details(ref: ModelRef) -> dict[str, Any]:
    """Ollama's ``details`` of a resolved model: the catalog's family, size and quant."""
    local = ref.quant is not None  # else a cloud offer: no size or quant to tell
    return {"parent_model": "", "format": "heddle", "family": ref.model, "families": [ref.model],
            "parameter_size": f"{catalog.model(ref.model).params_b:.1f}B" if local else "",
            "quantization_level": ref.quant.upper() if local else ""}


def show_reply(ref: ModelRef) -> dict[str, Any]:
    """``POST /api/show``: a catalog model's (or cloud offer's) details in Ollama's shape; its
    ``model_info`` carries the parameter count and context length under Ollama's key names
    (``<architecture>.context_length``), and its ``capabilities`` say ``tools`` for a model
    that calls tools (`ModelSpec.tools`), ``vision`` for one that sees images
    (`ModelSpec.vision`), ``insert`` for one that fills in the middle (`ModelSpec.fim`, the
    suffix check's rule too: `options.check_suffix`): where apps look for them (Continue's
    agent mode and autocomplete, Open WebUI), and ``thinking`` for a reasoning model
    (heddle.gateway.thinking.can_think), as Ollama does."""
    info: dict[str, Any] = {"general.architecture": ref.model, "general.basename": ref.model}
    capabilities = ["completion", "tools", "vision"]  # a cloud offer: Claude calls tools, sees images
    if ref.quant is not None:
        spec = catalog.model(ref.model)
        info |= {"general.parameter_count": round(spec.params_b * 1e9),
                 f"{ref.model}.context_length": spec.context_length}
        capabilities = (["embedding"] if spec.kind == "embedding" else
                        ["completion"] + ["tools"] * spec.tools + ["vision"] * spec.vision
                        + ["insert"] * spec.fim)
    if can_think(ref):
        capabilities.append("thinking")
    return {"modelfile": "", "parameters": "", "template": "", "license": "",
            "details": _details(ref), "model_info": info, "capabilities": capabilities,
            "modified_at": now()}


def ps_reply(served: list[tuple[ModelRef, list[str]]]) -> dict[str, Any]:
    """``GET /api/ps``: the models resident on the cluster's nodes now (from their capacity
    reports), with the weights' size at their quant, and the nodes in ``heddle``."""
    models = []
    for ref, nodes in served:
        spec = catalog.model(ref.model)
        size = round(spec.weights_gb(ref.quant or "") * 1e9)
        models.append({"name": ref.name, "model": ref.name, "size": size, "size_vram": size,
                       "digest": "", "details": _details(ref),
                       "context_length": spec.context_length, "heddle": {"nodes": nodes}})
    return {"models": models}


def tags_reply(models: list[tuple[str, str]]) -> dict[str, Any]:
    """``GET /api/tags``: (name, family) pairs in Ollama's listing shape."""
    return {"models": [{"name": name, "model": name, "modified_at": now(), "size": 0,
                        "digest": "", "details": {"family": family, "format": "heddle"}}
                       for name, family in models]}
