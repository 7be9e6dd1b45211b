"""The gateway's HTTP app: OpenAI-, Ollama- and Anthropic-compatible routes in front of the live
runtime.

Every chat (or embeddings) request is authenticated by its API key, gets the key's rules
tightened by its headers, becomes one task through the control plane (`TaskRun`), and is
answered in its protocol's shape: streamed as the agent produces the output, or in one reply. A caller that
disconnects cancels its task. Errors come back in the protocol's error shape with the reason
in words (`GatewayError`).

A plain ASGI app under uvicorn: each streamed piece is one ``send`` to the server. (FastAPI's
middleware stack and the task group of Starlette's streaming response took ~14% of the
gateway's CPU per streamed piece.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from heddle.gateway.anthropic_api import (
    CountTokensRequest,
    MessagesRequest,
    message_events,
    message_reply,
    model_info,
    with_model_info,
)
from heddle.gateway.anthropic_api import error_event as anthropic_error_event
from heddle.gateway.bodies import TaskBody
from heddle.gateway.bridge import Bridge
from heddle.gateway.embeddings import (
    OllamaEmbed,
    OllamaEmbeddings,
    OpenAIEmbeddings,
    check_model,
    ollama_embed_reply,
    ollama_embeddings_reply,
    openai_reply,
)
from heddle.gateway.errors import GatewayError
from heddle.gateway.images import BODY_BYTES, check_images
from heddle.gateway.keys import KeyRing
from heddle.gateway.ollama_api import (
    OllamaChat,
    OllamaGenerate,
    OllamaShow,
    error_line,
    ollama_lines,
    ollama_reply,
    ps_reply,
    show_reply,
    tags_reply,
)
from heddle.gateway.ollama_models import managed, pulled
from heddle.gateway.openai_api import (
    CHAT,
    TEXT,
    ChatRequest,
    CompletionRequest,
    completion_chunks,
    completion_reply,
    error_event,
    model_reply,
    models_reply,
)
from heddle.gateway.options import check_suffix
from heddle.gateway.responses_api import ResponseEvents, ResponsesRequest, response_reply
from heddle.gateway.run import TaskRun
from heddle.gateway.settings import GatewaySettings
from heddle.gateway.tasks import Chat, ModelRef, prompt_tokens, resolve_model
from heddle.gateway.thinking import check_thinks, output_bound
from heddle.live import protocol as wire
from heddle.models import catalog

__all__ = ["GatewayApp", "build_app"]

log = logging.getLogger("heddle.gateway")

HEDDLE_VERSION = importlib.metadata.version("heddle")
"""``GET /api/version``'s answer: apps check an Ollama server's version only to connect."""
RUNNING = b"heddle gateway is running"
"""``GET /``'s answer: apps probe an Ollama server's root for liveness ("Ollama is running")."""
MODEL_PATH = "/v1/models/"
"""``GET /v1/models/{model}``: one model, as OpenAI's clients retrieve it."""
BLOBS_PATH = "/api/blobs/"
"""``HEAD``/``POST /api/blobs/{digest}``: Ollama's upload of a model file (`MANAGED`)."""
MANAGED = {"/api/delete": ("delete", ("DELETE",)), "/api/copy": ("copy", ("POST",)),
           "/api/create": ("create", ("POST",)), "/api/push": ("push", ("POST",)),
           BLOBS_PATH: ("upload", ("HEAD", "POST"))}
"""Ollama's model-management routes heddle answers with a 501 (`ollama_models.managed`): the
verb each asks for and its methods."""
RESPONSE_PATH = "/v1/responses/"
"""``/v1/responses/{id}`` (and its ``/input_items``, ``/cancel``): a stored response, of which
heddle keeps none (`GatewayApp.stored_response`); ``/v1/responses/input_tokens`` is a route of
its own."""
SSE = "text/event-stream; charset=utf-8"
"""The OpenAI routes' streams: server-sent events."""
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Stream headers: no proxy in between may hold tokens back."""
MAX_BODY_BYTES = 2 * wire.MAX_MESSAGE_BYTES + BODY_BYTES
"""A request body larger than this cannot become a task: its text would not fit in a message,
its images are over their bounds (heddle.gateway.images)."""
END_WAIT_S = 1.0
"""Longest a stream's error ending waits to be written (`_Request._end_with`)."""
STOPPING = GatewayError(503, "the gateway is stopping; a stream's output so far is incomplete",
                        "gateway_stopping")
"""What a request still going when the server gives up waiting for it gets (`serve.GRACEFUL_S`)."""

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class CallerGoneError(Exception):
    """The caller disconnected before its answer was complete (nobody to answer)."""


class _Request:
    """One request's headers (lower-case names), body and ASGI channels."""

    __slots__ = ("at", "body", "headers", "model_id", "receive", "send", "started")

    def __init__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.at = time.time()  # when it came in (the stage instants of the loop-stats mode)
        self.headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            self.headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self.receive, self.send = receive, send
        self.body = b""
        self.model_id = ""  # GET /v1/models/{model}: the model asked for
        self.started = False  # the response's head has gone out

    async def read_body(self) -> None:
        parts, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise CallerGoneError
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > MAX_BODY_BYTES:
                raise GatewayError(413, f"the request body is over {MAX_BODY_BYTES} bytes",
                                   "request_too_large")
            if not message.get("more_body"):
                break
        self.body = b"".join(parts)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                     for k, v in headers.items()]})

    async def json(self, doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """``doc`` as JSON (bytes: JSON already)."""
        data = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False,
                                                            separators=(",", ":")).encode()
        await self.start(status, {**(headers or {}), "Content-Type": "application/json",
                                  "Content-Length": str(len(data))})
        await self.send({"type": "http.response.body", "body": data})

    async def stream(self, media: str, headers: dict[str, str], parts: AsyncIterator[bytes],
                     error: Callable[[GatewayError], bytes]) -> None:
        """``parts`` as they come, then the body's end. A stream that cannot go on ends with
        ``error``'s part (the protocol's error event or line) and the body's end all the same,
        never with the connection closed mid-body (a caller would take the text so far for the
        whole answer): the task's own failure (``parts`` raising GatewayError: it failed,
        timed out, its node was lost), a failure in the gateway, or the cancel of a request
        still going when the server stops (after its grace period, `serve.GRACEFUL_S`; at once
        on a second SIGINT; or as its event loop ends on an error, when asyncio.run cancels
        what is left)."""
        await self.start(200, {**headers, **NO_BUFFERING, "Content-Type": media})
        send = self.send
        try:
            async for part in parts:
                await send({"type": "http.response.body", "body": part, "more_body": True})
        except GatewayError as exc:
            await send({"type": "http.response.body", "body": error(exc)})
            return
        except asyncio.CancelledError:  # the caller gone (nothing is written then) or the server stopping
            await self._end_with(error(STOPPING))
            raise
        except Exception:
            log.exception("a stream failed in the gateway")
            await self._end_with(error(GatewayError(
                500, "internal error in the gateway; the output so far is incomplete", "internal_error")))
            return
        await send({"type": "http.response.body", "body": b""})

    async def _end_with(self, last: bytes) -> None:
        """``last`` and the body's end, in one send; a caller that reads nothing more is not
        waited for longer than END_WAIT_S (the write would wait for room in its buffer)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send({"type": "http.response.body", "body": last}), END_WAIT_S)


class GatewayApp:
    """The ASGI app: a route per (method, path); `__call__` answers one request."""

    def __init__(self, settings: GatewaySettings, keys: KeyRing, bridge: Bridge) -> None:
        self.settings, self.keys, self.bridge = settings, keys, bridge
        self.routes: dict[str, dict[str, Callable[[_Request], Awaitable[None]]]] = {
            "/v1/chat/completions": {"POST": self.chat_completions},
            "/v1/completions": {"POST": self.completions},
            "/v1/messages": {"POST": self.messages},
            "/v1/messages/count_tokens": {"POST": self.count_tokens},
            "/v1/responses": {"POST": self.responses},
            "/v1/responses/input_tokens": {"POST": self.response_tokens},
            RESPONSE_PATH: {"GET": self.stored_response, "POST": self.stored_response,
                            "DELETE": self.stored_response},
            "/v1/models": {"GET": self.models},
            MODEL_PATH: {"GET": self.model},
            "/api/chat": {"POST": self.ollama_chat},
            "/api/generate": {"POST": self.ollama_generate},
            "/v1/embeddings": {"POST": self.embeddings},
            "/api/embed": {"POST": self.ollama_embed},
            "/api/embeddings": {"POST": self.ollama_embeddings},
            "/api/tags": {"GET": self.ollama_tags},
            "/api/ps": {"GET": self.ollama_ps},
            "/api/show": {"POST": self.ollama_show},
            "/api/version": {"GET": self.ollama_version},
            "/api/pull": {"POST": self.ollama_pull},
            **{path: {method: functools.partial(self.ollama_manage, verb=verb) for method in methods}
               for path, (verb, methods) in MANAGED.items()},
            "/": {"GET": self.root, "HEAD": self.root},
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; nothing else is served
        request = _Request(scope, receive, send)
        path = scope["path"]
        for prefix in (MODEL_PATH, BLOBS_PATH, RESPONSE_PATH):
            if path.startswith(prefix) and len(path) > len(prefix) and path not in self.routes:
                request.model_id, path = path[len(prefix):], prefix
        methods = self.routes.get(path)
        if methods is None:
            return await request.json({"detail": "Not Found"}, 404)
        route = methods.get(scope["method"])
        if route is None:
            return await request.json({"detail": "Method Not Allowed"}, 405,
                                      {"Allow": ", ".join(methods)})
        try:
            await route(request)
        except CallerGoneError:
            pass  # nobody to answer; the task (if any) was cancelled by its run's close
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not request.started:
                await request.json({"error": {"message": "internal error in the gateway",
                                              "type": "server_error"}}, 500)

    # -- routes ----------------------------------------------------------------------------------
    async def chat_completions(self, request: _Request) -> None:
        await self._answer(request, ChatRequest, GatewayError.openai, _openai_stream, error_event,
                           SSE, lambda run, _: _openai_reply(run, CHAT))

    async def completions(self, request: _Request) -> None:
        await self._answer(request, CompletionRequest, GatewayError.openai, _openai_stream, error_event,
                           SSE, lambda run, _: _openai_reply(run, TEXT))

    async def messages(self, request: _Request) -> None:
        await self._answer(request, MessagesRequest, GatewayError.anthropic, message_events,
                           anthropic_error_event, SSE, message_reply)

    async def count_tokens(self, request: _Request) -> None:
        await self._count(request, CountTokensRequest, GatewayError.anthropic,
                          lambda tokens: {"input_tokens": tokens})

    async def response_tokens(self, request: _Request) -> None:
        await self._count(request, ResponsesRequest, GatewayError.openai,
                          lambda tokens: {"object": "response.input_tokens", "input_tokens": tokens})

    async def _count(self, request: _Request, schema: type[TaskBody], shape: Callable[[GatewayError], dict],
                     reply: Callable[[int], dict]) -> None:
        """A route counting a request's prompt tokens as its task would (`tasks.prompt_tokens`),
        running none: Anthropic's ``count_tokens``, the Responses API's ``input_tokens``."""
        async def count() -> dict:
            await request.read_body()
            body = _parse(request.body, schema)
            messages, system = body.chat_messages()
            model = resolve_model(body.model, self.bridge.served(latest=False))
            return reply(prompt_tokens(Chat(model, messages, None, system, tools=body.tool_spec(),
                                            images=tuple(body.image_set().images))))
        await self._keyed(request, shape, count)

    async def responses(self, request: _Request) -> None:
        await self._answer(request, ResponsesRequest, GatewayError.openai, ResponseEvents, error_event,
                           SSE, response_reply)

    async def stored_response(self, request: _Request) -> None:
        def none() -> dict:
            raise GatewayError(404, "heddle keeps no responses (store is accepted, nothing is "
                               "stored): a response cannot be retrieved, cancelled or deleted",
                               "response_not_found")
        await self._keyed(request, GatewayError.openai, none)

    async def ollama_chat(self, request: _Request) -> None:
        await self._answer(request, OllamaChat, GatewayError.ollama,
                           lambda run, _: ollama_lines(run, generate=False), error_line,
                           "application/x-ndjson", lambda run, _: ollama_reply(run, generate=False))

    async def ollama_generate(self, request: _Request) -> None:
        await self._answer(request, OllamaGenerate, GatewayError.ollama,
                           lambda run, _: ollama_lines(run, generate=True), error_line,
                           "application/x-ndjson", lambda run, _: ollama_reply(run, generate=True))

    async def embeddings(self, request: _Request) -> None:
        await self._embed(request, OpenAIEmbeddings, GatewayError.openai,
                          lambda run, body: openai_reply(run, body.encoding_format))

    async def ollama_embed(self, request: _Request) -> None:
        await self._embed(request, OllamaEmbed, GatewayError.ollama, lambda run, _: ollama_embed_reply(run))

    async def ollama_embeddings(self, request: _Request) -> None:
        await self._embed(request, OllamaEmbeddings, GatewayError.ollama,
                          lambda run, _: ollama_embeddings_reply(run))

    async def _embed(self, request: _Request, schema: type[TaskBody], shape: Callable[[GatewayError], dict],
                     reply: Callable[[TaskRun, Any], Awaitable[dict | bytes]]) -> None:
        """An embeddings route: a chat's path, answered in one reply (never streamed)."""
        await self._answer(request, schema, shape, _no_stream, _no_stream_error, "application/json", reply)

    async def models(self, request: _Request) -> None:
        await self._keyed(request, _listing_shape(request), lambda: with_model_info(models_reply(
            [(name, owner) for name, owner, _ in self._served_models()])))

    async def model(self, request: _Request) -> None:
        async def one() -> dict:
            owners = {name: owner for name, owner, _ in self._served_models()}
            if request.model_id not in owners:
                raise GatewayError(404, f"model {request.model_id!r} is not served by this cluster "
                                   "now (GET /v1/models lists what it serves)", "model_not_found",
                                   param="model")
            return model_info(model_reply(request.model_id, owners[request.model_id]))
        await self._keyed(request, _listing_shape(request), one)

    async def ollama_tags(self, request: _Request) -> None:
        await self._keyed(request, GatewayError.ollama, lambda: tags_reply(
            [(name, family) for name, _, family in self._served_models()]))

    async def ollama_ps(self, request: _Request) -> None:
        await self._keyed(request, GatewayError.ollama, lambda: ps_reply(self._resident()))

    async def ollama_show(self, request: _Request) -> None:
        async def show() -> dict:
            await request.read_body()
            asked = _parse(request.body, OllamaShow).asked()
            return show_reply(resolve_model(asked, self.bridge.served(latest=False)))
        await self._keyed(request, GatewayError.ollama, show)

    async def ollama_pull(self, request: _Request) -> None:
        async def pull() -> dict:
            await request.read_body()
            asked = _parse(request.body, OllamaShow).asked()
            try:
                ref = resolve_model(asked, self.bridge.served(latest=False))
            except GatewayError:  # not in the catalog: not served either
                return pulled(asked, served=False)
            return pulled(asked, (ref.model, ref.quant) in self.bridge.served()
                          or ref.name in self.settings.cloud_offers)
        await self._keyed(request, GatewayError.ollama, pull)

    async def ollama_manage(self, request: _Request, verb: str) -> None:
        def refuse() -> dict:
            raise managed(verb)
        await self._keyed(request, GatewayError.ollama, refuse)

    async def ollama_version(self, request: _Request) -> None:
        await request.json({"version": HEDDLE_VERSION})

    async def root(self, request: _Request) -> None:
        await request.start(200, {"Content-Type": "text/plain; charset=utf-8",
                                  "Content-Length": str(len(RUNNING))})
        await request.send({"type": "http.response.body", "body": RUNNING})

    # -- how a chat is answered ------------------------------------------------------------------
    async def _begin(self, request: _Request, schema: type[TaskBody]) -> tuple[Any, TaskRun | dict]:
        """Key, body, rules and model -> a task to place (GatewayError on any refusal), or the
        answer to an Ollama load or unload ask, which runs none (heddle.gateway.ollama_models)."""
        caller = _caller(self.keys, request)
        await request.read_body()
        body = _parse(request.body, schema)
        request.body = b""  # parsed: not held while the task runs (a body with images: megabytes)
        rules = self.keys.rules(caller, request.headers, self.settings.max_wait_s)
        load = body.load_only()
        completion = None if load else body.completion()
        messages, system = ([], None) if load or completion is not None else body.chat_messages()
        model = resolve_model(body.model, self.bridge.served(latest=False))
        embed = None if load else body.embedding()
        check_model(model, body.embeds)
        images = body.image_set()
        check_images(model, images)
        check_suffix(model, completion)
        self.keys.check_tier(caller, model.model)
        if load:
            return body, body.loaded(model, load, self.bridge.served().get((model.model, model.quant or ""), []))
        gen, bound = body.generation(), body.output_bound()
        if embed is None:
            check_thinks(model, gen.think, body.think_field())
            bound = output_bound(model, gen.think, bound)
        chat = body.fit(Chat(model, messages, bound, system, gen,
                             body.tool_spec(), completion, embed, tuple(images.images) if images else ()))
        run = TaskRun(self.bridge, chat, rules, timeout_s=self.settings.request_timeout_s,
                      task_timeout_s=self.settings.task_timeout_s)
        return body, run

    async def _answer(self, request: _Request, schema: type[TaskBody],
                      shape: Callable[[GatewayError], dict],
                      stream: Callable[[TaskRun, Any], AsyncIterator[bytes]],
                      error: Callable[[GatewayError], bytes], media: str,
                      reply: Callable[[TaskRun, Any], Awaitable[dict | bytes]]) -> None:
        """A chat route: streamed as produced, or one reply; errors in the protocol's shape.
        The caller going away at any point (placement, streaming, waiting for the reply)
        cancels the work and its task."""
        run: TaskRun | None = None
        try:
            body, begun = await self._begin(request, schema)
            if not isinstance(begun, TaskRun):
                return await request.json(begun)  # an Ollama load or unload ask: no task
            run = begun
            self.bridge.stamp(run.task_id, "g_received", request.at)

            async def respond() -> None:
                await run.start()
                if body.stream:
                    parts = stream(run, body)
                    # a stream that numbers its events (the Responses API's) writes its own end
                    await request.stream(media, run.headers(), parts, getattr(parts, "error", error))
                    return
                run.streaming = False
                doc = await reply(run, body)
                await request.json(doc, headers=run.headers())

            await _unless_gone(request, respond)
        except GatewayError as exc:
            if not request.started:
                await request.json(shape(exc), exc.status, exc.headers())
        except asyncio.CancelledError:  # the server's, as it stops (the caller's is CallerGoneError)
            if not request.started:
                await request.json(shape(STOPPING), STOPPING.status)
            raise
        finally:
            if run is not None:
                run.close()

    async def _keyed(self, request: _Request, shape: Callable[[GatewayError], dict],
                     answer: Callable[[], dict | Awaitable[dict]]) -> None:
        """A route that runs no task: the caller's key checked, then `answer`'s document."""
        try:
            _caller(self.keys, request)
            doc = answer()
            if not isinstance(doc, dict):
                doc = await doc
        except GatewayError as exc:
            return await request.json(shape(exc), exc.status)
        await request.json(doc)

    def _resident(self) -> list[tuple[ModelRef, list[str]]]:
        """The catalog models resident on the fleet now, named ``model:quant``, with their nodes."""
        return [(ModelRef(f"{model}:{quant}", model, quant), nodes)
                for (model, quant), nodes in sorted(self.bridge.served().items())]

    def _served_models(self) -> list[tuple[str, str, str]]:
        """(name, owned_by, family) of what the fleet serves now, then the configured offers."""
        out = [(ref.name, "heddle:" + ",".join(nodes), ref.model) for ref, nodes in self._resident()]
        out += [(offer, "heddle:cloud", catalog.offer(offer).id)
                for offer in self.settings.cloud_offers]
        return out


def build_app(settings: GatewaySettings, keys: KeyRing, bridge: Bridge) -> GatewayApp:
    return GatewayApp(settings, keys, bridge)


def _caller(keys: KeyRing, request: _Request) -> Any:
    """Who is asking: ``Authorization: Bearer`` or Anthropic's ``X-API-Key`` (`KeyRing.caller`)."""
    return keys.caller(request.headers.get("authorization"), request.headers.get("x-api-key"))


def _listing_shape(request: _Request) -> Callable[[GatewayError], dict]:
    """The models routes' error shape: Anthropic's for its clients (they send
    ``anthropic-version``), else OpenAI's."""
    return GatewayError.anthropic if "anthropic-version" in request.headers else GatewayError.openai


def _parse(raw: bytes, schema: type[BaseModel]) -> Any:
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "json_invalid":
            raise GatewayError(400, f"the body is not valid JSON: {err['msg']}",
                               "invalid_json") from None
        raise GatewayError.at(where, err["msg"]) from None


def _openai_stream(run: TaskRun, body: ChatRequest | CompletionRequest) -> AsyncIterator[bytes]:
    return completion_chunks(run, body.kind, body.include_usage())


async def _openai_reply(run: TaskRun, kind: str) -> dict:
    async for _ in run.pieces():
        pass
    return completion_reply(run, kind)


def _no_stream(run: TaskRun, body: Any) -> AsyncIterator[bytes]:
    raise AssertionError("an embeddings request is answered in one reply")


def _no_stream_error(exc: GatewayError) -> bytes:
    raise AssertionError("an embeddings request is answered in one reply")


async def _unless_gone(request: _Request, work: Callable[[], Awaitable[None]]) -> None:
    """``work()`` in this task, cut short if the caller disconnects first (CallerGoneError):
    a watcher task cancels this one then. (The work in a task of its own waited a turn of
    the loop before it could submit: time to first token under load.)"""
    me = asyncio.current_task()
    assert me is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(request.receive)
        gone = True
        me.cancel()  # this task is still in `work` (else the watcher was cancelled first)

    watcher = asyncio.ensure_future(watch())
    try:
        await work()
    except asyncio.CancelledError:
        if not gone:
            raise  # the server's own cancel (shutting down): not ours to swallow
        me.uncancel()
        raise CallerGoneError from None
    finally:
        watcher.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
