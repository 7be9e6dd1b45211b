"""The gateway's HTTP app: OpenAI- and Ollama-compatible routes in front of the live runtime.

Every chat request is authenticated by its API key, gets the key's rules tightened by its
headers, becomes one task through the control plane (`TaskRun`), and is answered in its
protocol's shape: streamed as the agent produces the output, or in one reply. A caller that
disconnects cancels its task. Errors come back in the protocol's error shape with the reason
in words (`GatewayError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from heddle.gateway.bridge import Bridge
from heddle.gateway.errors import GatewayError
from heddle.gateway.keys import KeyRing
from heddle.gateway.ollama_api import (
    OllamaChat,
    OllamaGenerate,
    ollama_lines,
    ollama_reply,
    tags_reply,
)
from heddle.gateway.openai_api import ChatRequest, chat_chunks, chat_reply, models_reply
from heddle.gateway.run import TaskRun
from heddle.gateway.settings import GatewaySettings
from heddle.gateway.tasks import Chat, resolve_model
from heddle.models import catalog

__all__ = ["build_app"]

NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Stream headers: no proxy in between may hold tokens back."""


class CallerGoneError(Exception):
    """The caller disconnected before its answer was ready (nobody to answer)."""


def build_app(settings: GatewaySettings, keys: KeyRing, bridge: Bridge) -> FastAPI:
    app = FastAPI(title="heddle gateway", docs_url=None, redoc_url=None, openapi_url=None)

    async def begin(request: Request, schema: type[BaseModel]) -> tuple[Any, TaskRun]:
        """Key, body, rules and model -> a placed task (GatewayError on any refusal)."""
        caller = keys.caller(request.headers.get("authorization"))
        body = await _body(request, schema)
        rules = keys.rules(caller, request.headers, settings.max_wait_s)  # type: ignore[arg-type]
        messages, system = body.chat_messages()
        max_tokens = (getattr(body, "max_completion_tokens", None) or body.max_tokens
                      if isinstance(body, ChatRequest) else body.max_tokens())
        chat = Chat(resolve_model(body.model, bridge.served()), messages, max_tokens, system)
        run = TaskRun(bridge, chat, rules, timeout_s=settings.request_timeout_s,
                      task_timeout_s=settings.task_timeout_s)
        try:
            await _unless_gone(request, run.start)
        except BaseException:
            run.close()
            raise
        return body, run

    async def answer(request: Request, schema: type[BaseModel], shape: Callable[[GatewayError], dict],
                     stream: Callable[[TaskRun, Any], AsyncIterator[bytes]], media: str,
                     reply: Callable[[TaskRun], Awaitable[dict]]) -> Response:
        """A chat route: streamed as produced, or one reply; errors in the protocol's shape."""
        try:
            body, run = await begin(request, schema)
            if body.stream:
                return StreamingResponse(_closing(run, stream(run, body)), media_type=media,
                                         headers={**run.headers(), **NO_BUFFERING})
            run.streaming = False
            try:
                doc = await _unless_gone(request, lambda: reply(run))
            finally:
                run.close()
            return JSONResponse(doc, headers=run.headers())
        except GatewayError as exc:
            return JSONResponse(shape(exc), status_code=exc.status, headers=exc.headers())
        except CallerGoneError:
            return Response(status_code=499)

    def keyed(request: Request, shape: Callable[[GatewayError], dict],
              listing: Callable[[], dict]) -> Response:
        try:
            keys.caller(request.headers.get("authorization"))
        except GatewayError as exc:
            return JSONResponse(shape(exc), status_code=exc.status)
        return JSONResponse(listing())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await answer(request, ChatRequest, GatewayError.openai, _openai_stream,
                            "text/event-stream", _openai_reply)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        return keyed(request, GatewayError.openai, lambda: models_reply(
            [(name, owner) for name, owner, _ in served_models()]))

    @app.post("/api/chat")
    async def ollama_chat(request: Request) -> Response:
        return await answer(request, OllamaChat, GatewayError.ollama,
                            lambda run, _: ollama_lines(run, generate=False),
                            "application/x-ndjson", lambda run: ollama_reply(run, generate=False))

    @app.post("/api/generate")
    async def ollama_generate(request: Request) -> Response:
        return await answer(request, OllamaGenerate, GatewayError.ollama,
                            lambda run, _: ollama_lines(run, generate=True),
                            "application/x-ndjson", lambda run: ollama_reply(run, generate=True))

    @app.get("/api/tags")
    async def ollama_tags(request: Request) -> Response:
        return keyed(request, GatewayError.ollama, lambda: tags_reply(
            [(name, family) for name, _, family in served_models()]))

    def served_models() -> list[tuple[str, str, str]]:
        """(name, owned_by, family) of what the fleet serves now, then the configured offers."""
        out = [(f"{model}:{quant}", "heddle:" + ",".join(nodes), model)
               for (model, quant), nodes in sorted(bridge.served().items())]
        out += [(offer, "heddle:cloud", catalog.offer(offer).id) for offer in settings.cloud_offers]
        return out

    return app


async def _body(request: Request, schema: type[BaseModel]) -> Any:
    raw = await request.body()
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "json_invalid":
            raise GatewayError(400, f"the body is not valid JSON: {err['msg']}",
                               "invalid_json") from None
        raise GatewayError(400, f"{where}: {err['msg']}", "invalid_request", param=where) from None


def _openai_stream(run: TaskRun, body: ChatRequest) -> AsyncIterator[bytes]:
    return chat_chunks(run, body.stream_options is not None and body.stream_options.include_usage)


async def _openai_reply(run: TaskRun) -> dict:
    async for _ in run.pieces():
        pass
    return chat_reply(run)


async def _unless_gone(request: Request, work: Callable[[], Awaitable[Any]]) -> Any:
    """``work()``, unless the caller disconnects first (CallerGoneError)."""
    job = asyncio.ensure_future(work())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()
    if job.done() and not job.cancelled():
        return job.result()
    raise CallerGoneError


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _closing(run: TaskRun, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream, then the run closed however it ends (a disconnect cancels the task)."""
    try:
        async for part in body:
            yield part
    finally:
        run.close()
