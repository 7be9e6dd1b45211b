"""Stand-in LLM servers on 127.0.0.1 speaking Ollama's, the OpenAI-compatible and Anthropic's
streaming protocols over real HTTP (chunked transfer, as the real servers send), with faults
scripted per request: a status with headers, a held first token, a connection cut mid-stream,
malformed JSON, or the server gone; or with a `planner` that paces each stream as a real
server would (tests/live/fidelitykit.py paces it by the performance model). A request with
tools whose conversation does not end with a tool's result gets a call of its first tool
(`TOOL_ARGUMENTS`), streamed as each server streams one; with the result, the usual text. A
request with images is answered with each image's SHA-256 and size (`image_words`).
Embeddings (Ollama's ``/api/embed``, OpenAI's ``/v1/embeddings``) are answered in one document
with `embedding_vector`'s vectors of each input, cut to ``dimensions`` when asked. A reasoning
model (`REASONING`) asked to think, or not asked not to (`thinks`), streams `THOUGHTS` first, in
each server's format (Ollama's ``thinking``, the OpenAI-compatible ``delta.reasoning_content``
or ``delta.reasoning``, Anthropic's thinking block); Ollama asked to make another model think
answers 400 "... does not support thinking", as Ollama does."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import random
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ["alpha", " beta", " gamma", " delta", " epsilon"]
THOUGHTS = ["The user", " wants", " five", " words."]
"""What a reasoning stand-in thinks before its `WORDS`."""
REASONING = "gpt-oss"
"""A model whose name has this in it is a reasoning model (the stand-ins think with it)."""
TOOL_ARGUMENTS = {"city": "Lisbon", "days": 2}
"""The arguments of every stand-in's tool call."""


EMBEDDING_DIMENSIONS = 768
"""The stand-ins' vector length (nomic-embed-text's)."""


def embedding_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The stand-ins' vector of ``text``: numbers in [-1, 1) drawn from a generator seeded by
    the text's SHA-256 (the same in every process), cut to ``dimensions``."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    return [rng.uniform(-1.0, 1.0) for _ in range(EMBEDDING_DIMENSIONS)][:dimensions]


def embedding_doc(path: str, body: dict) -> dict[str, Any]:
    """The answer to an embeddings request, in the shape of ``path``'s server."""
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    vectors = [embedding_vector(t, body.get("dimensions") or EMBEDDING_DIMENSIONS) for t in texts]
    tokens = sum(len(t.split()) + 2 for t in texts)
    if path == "/api/embed":
        return {"model": body["model"], "embeddings": vectors, "total_duration": 1000,
                "load_duration": 0, "prompt_eval_count": tokens}
    return {"object": "list", "model": body["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}


EMBEDDING_PATHS = ("/api/embed", "/v1/embeddings")


@dataclass
class Plan:
    """One chat response: ``status`` (+ ``headers``, ``body``) or the stream ``chunks``."""

    chunks: list[bytes] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hold: threading.Event | None = None  # wait for it before chunk ``hold_at`` (slow token)
    hold_at: int = 0
    cut_after: int | None = None  # send this many chunks, then close the connection
    delays: list[float] | None = None  # seconds to wait before each chunk (a paced stream)


def thinks(path: str, body: dict) -> bool:
    """The request has a reasoning model think: asked to (Ollama's ``think``, OpenAI's
    ``reasoning_effort`` or the template's ``enable_thinking``; Anthropic's ``thinking``
    enabled), or, a `REASONING` model, not asked not to (Ollama, OpenAI-compatible)."""
    if path == "/v1/messages":
        return (body.get("thinking") or {}).get("type") == "enabled"
    if path in ("/api/chat", "/api/generate"):
        asked = body.get("think")
    else:
        asked = body.get("reasoning_effort") or (body.get("chat_template_kwargs") or {}).get("enable_thinking")
    return bool(asked) or (asked is None and REASONING in body["model"])


def ollama_stream(model: str, words=WORDS, prompt_tokens: int = 12, garbage_at: int | None = None,
                  generate: bool = False, thoughts=()) -> list[bytes]:
    """``/api/chat``'s stream (``message.content``), or ``generate``: ``/api/generate``'s
    (``response``); ``thoughts`` first, in ``thinking`` (a chat's ``message.thinking``)."""
    def piece(text: str, thinking: str | None = None) -> dict:
        also = {} if thinking is None else {"thinking": thinking}
        if generate:
            return {"response": text, **also}
        return {"message": {"role": "assistant", "content": text, **also}}

    lines = [{"model": model, **piece("", t), "done": False} for t in thoughts]
    lines += [{"model": model, **piece(w), "done": False} for w in words]
    lines.append({"model": model, **piece(""), "done": True,
                  "done_reason": "stop", "prompt_eval_count": prompt_tokens,
                  "eval_count": len(words) + len(thoughts), "eval_duration": 50_000_000})
    out = [json.dumps(x).encode() + b"\n" for x in lines]
    if garbage_at is not None:
        out[garbage_at] = b'{"model": "x", "message": {"content": \n'
    return out


def openai_stream(model: str, words=WORDS, prompt_tokens: int = 12, text: bool = False, thoughts=(),
                  field: str = "reasoning_content") -> list[bytes]:
    """``/v1/chat/completions``' events (``delta.content``), or ``text``: ``/v1/completions``'
    (``text_completion``s, ``choices[].text``); ``thoughts`` first, in ``delta.<field>``
    (``reasoning_content``: vLLM, llama.cpp, LM Studio; ``reasoning``: Ollama's endpoint), and
    counted in ``usage.completion_tokens_details.reasoning_tokens``."""
    def choice(piece: str | None, finish: str | None) -> dict:
        if text:
            return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
        return {"index": 0, "delta": {} if piece is None else {"content": piece}, "finish_reason": finish}

    kind = {"object": "text_completion"} if text else {}
    events = [{"model": model, "choices": [{"index": 0, "delta": {field: t}, "finish_reason": None}]}
              for t in thoughts]
    events += [{"model": model, **kind, "choices": [choice(w, None)]} for w in words]
    events.append({"model": model, **kind, "choices": [choice(None, "stop")]})
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words) + len(thoughts)}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(thoughts)}
    events.append({"model": model, **kind, "choices": [], "usage": usage})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def anthropic_stream(model: str, words=WORDS, input_tokens: int = 20, cached: int = 0,
                     thoughts=()) -> list[bytes]:
    """The Messages API's events; ``thoughts`` first, as a thinking block (``thinking_delta``s,
    then its ``signature_delta``), the text in the next block."""
    def ev(kind: str, data: dict) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    usage = {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": cached}
    thinking = [
        ev("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                "signature": ""}}),
        *[ev("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": t}})
          for t in thoughts],
        ev("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}}),
        ev("content_block_stop", {"index": 0}),
    ] if thoughts else []
    at = 1 if thoughts else 0
    return [
        ev("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant",
                                          "content": [], "model": model, "stop_reason": None,
                                          "stop_sequence": None, "usage": usage}}),
        *thinking,
        ev("content_block_start", {"index": at, "content_block": {"type": "text", "text": ""}}),
        *[ev("content_block_delta", {"index": at, "delta": {"type": "text_delta", "text": w}})
          for w in words],
        ev("content_block_stop", {"index": at}),
        ev("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": len(words) + len(thoughts)}}),
        ev("message_stop", {}),
    ]


def ollama_tool_stream(model: str, name: str, prompt_tokens: int = 30) -> list[bytes]:
    """A call of ``name`` as Ollama streams one: whole, in a message's ``tool_calls``, no id."""
    lines = [{"model": model, "message": {"role": "assistant", "content": "", "tool_calls": [
                 {"function": {"name": name, "arguments": TOOL_ARGUMENTS}}]}, "done": False},
             {"model": model, "message": {"role": "assistant", "content": ""}, "done": True,
              "done_reason": "stop", "prompt_eval_count": prompt_tokens, "eval_count": 9,
              "eval_duration": 50_000_000}]
    return [json.dumps(x).encode() + b"\n" for x in lines]


def openai_tool_stream(model: str, name: str, prompt_tokens: int = 30) -> list[bytes]:
    """A call of ``name`` as vLLM and llama.cpp's server stream one: the id and name first,
    then the arguments in pieces, finish_reason ``tool_calls``."""
    text = json.dumps(TOOL_ARGUMENTS)
    pieces = [text[:5], text[5:12], text[12:]]
    deltas = [{"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_standin_1", "type": "function", "function": {"name": name, "arguments": ""}}]}]
    deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]
    events = [{"model": model, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({"model": model, "choices": [],
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 9}})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def anthropic_tool_stream(model: str, name: str, input_tokens: int = 40) -> list[bytes]:
    """A call of ``name`` as the Messages API streams one: a ``tool_use`` block, its input in
    ``input_json_delta`` pieces, stop_reason ``tool_use``."""
    def ev(kind: str, data: dict) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    text = json.dumps(TOOL_ARGUMENTS)
    usage = {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": 0}
    return [
        ev("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant",
                                          "content": [], "model": model, "stop_reason": None,
                                          "stop_sequence": None, "usage": usage}}),
        ev("content_block_start", {"index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_standin_1", "name": name, "input": {}}}),
        *[ev("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": p}})
          for p in (text[:6], text[6:])],
        ev("content_block_stop", {"index": 0}),
        ev("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"output_tokens": 9}}),
        ev("message_stop", {}),
    ]


def tool_plan(path: str, body: dict) -> Plan | None:
    """A call of the request's first tool, unless it has none or ends with a tool's result."""
    tools, last = body.get("tools"), (body.get("messages") or [{}])[-1]
    if not tools:
        return None
    if path == "/v1/messages":
        content = last.get("content")
        if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            return None
        return Plan(chunks=anthropic_tool_stream(body["model"], tools[0]["name"]))
    if last.get("role") == "tool":
        return None
    stream = ollama_tool_stream if path == "/api/chat" else openai_tool_stream
    return Plan(chunks=stream(body["model"], tools[0]["function"]["name"]))


def sent_images(path: str, body: dict) -> list[bytes]:
    """The images a chat request carries, decoded, in each server's shape: Ollama's message
    ``images`` (base64), OpenAI's ``image_url`` parts (data URLs), Anthropic's ``image``
    blocks (base64 source)."""
    out = []
    for m in body.get("messages") or ():
        out += [base64.b64decode(i) for i in m.get("images") or ()]
        for part in m.get("content") if isinstance(m.get("content"), list) else ():
            if part.get("type") == "image_url":
                out.append(base64.b64decode(part["image_url"]["url"].partition(";base64,")[2]))
            elif part.get("type") == "image":
                out.append(base64.b64decode(part["source"]["data"]))
    return out


def image_words(images: list[bytes]) -> list[str]:
    """The stand-ins' answer to a request with images: each image's SHA-256 and size."""
    return [f"{hashlib.sha256(data).hexdigest()}:{len(data)} " for data in images]


def image_plan(path: str, body: dict) -> Plan | None:
    """A request with images is answered with `image_words` (what reached the server)."""
    images = sent_images(path, body)
    if not images:
        return None
    words = image_words(images)
    if path == "/api/chat":
        return Plan(chunks=ollama_stream(body["model"], words))
    if path == "/v1/messages":
        return Plan(chunks=anthropic_stream(body["model"], words))
    return Plan(chunks=openai_stream(body["model"], words))


DEFAULT_STREAMS: dict[str, Callable[..., list[bytes]]] = {
    "/api/chat": ollama_stream,
    "/api/generate": lambda model, **kw: ollama_stream(model, generate=True, **kw),
    "/v1/chat/completions": openai_stream,
    "/v1/completions": lambda model, **kw: openai_stream(model, text=True),
    "/v1/messages": anthropic_stream}
"""Each POST route's stream when no plan says otherwise (``thoughts=``: a reasoning model's)."""


def default_plan(path: str, body: dict, reasoning_field: str) -> Plan:
    """The stream of ``path`` for ``body``: the thinking first if it `thinks`; Ollama asked to
    make a model think that cannot: 400 saying so, as Ollama answers."""
    model, extra = body["model"], {}
    if thinks(path, body):
        if path in ("/api/chat", "/api/generate") and REASONING not in model:
            return Plan(status=400, body=json.dumps({"error": f'"{model}" does not support thinking'}).encode())
        extra["thoughts"] = THOUGHTS
        if path == "/v1/chat/completions":
            extra["field"] = reasoning_field
    return Plan(chunks=DEFAULT_STREAMS[path](model, **extra))


class _QuietServer(ThreadingHTTPServer):
    """A client closing its connection (a stream cut by its agent, a kept-alive connection
    dropped: reset, broken pipe) is what clients do, not a fault of the stand-in: no
    traceback for it; anything else is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StandIn:
    """A server speaking every protocol: GET /api/tags, /api/ps, /v1/models; POST /api/chat,
    /api/generate, /v1/chat/completions, /v1/completions, /v1/messages. Each POST takes the
    next `Plan`, else a default one; `requests` records what each received."""

    def __init__(self, model: str = "llama3.1:8b-instruct-q4_K_M",
                 planner: Callable[[str, dict], Plan] | None = None,
                 embedding: tuple[str, dict[str, str]] | None = None,
                 also: tuple[tuple[str, dict[str, str]], ...] = ()) -> None:
        """``embedding``: an embedding model's name and Ollama details served beside ``model``;
        ``also``: more models served beside it (name, Ollama details)."""
        self.model = model
        self.reasoning_field = "reasoning_content"  # where an OpenAI-compatible stream thinks
        self.planner = planner  # builds the Plan of a request no scripted Plan answers
        self.tags: list[dict[str, Any]] = [{"name": model, "details": {}}]
        self.loaded: list[str] = [model]
        self.embedder: Callable[[str, dict], dict[str, Any]] = embedding_doc  # answers embeddings
        for name, details in ((embedding,) if embedding is not None else ()) + also:
            self.tags.append({"name": name, "details": details})
            self.loaded.append(name)
        self.plans: deque[Plan] = deque()
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.lock = threading.Lock()
        self.holds: list[threading.Event] = []
        self.connections: set[socket.socket] = set()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # each chunk goes out at once, not held by Nagle's algorithm until the
                # client's delayed ACK of the one before (~40 ms on Linux)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with standin.lock:
                    standin.connections.add(self.connection)

            def _json(self, doc: Any, status: int = 200) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/tags":
                    self._json({"models": standin.tags})
                elif self.path == "/api/ps":
                    self._json({"models": [{"name": n} for n in standin.loaded]})
                elif self.path == "/v1/models":
                    self._json({"object": "list", "data": [{"id": t["name"], "object": "model"}
                                                           for t in standin.tags]})
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with standin.lock:
                    standin.requests.append((self.path, dict(self.headers), body))
                    # an embeddings request is always answered (scripted plans are a chat's)
                    embeds = self.path in EMBEDDING_PATHS
                    plan = standin.plans.popleft() if standin.plans and not embeds else None
                if embeds:
                    self._json(standin.embedder(self.path, body))
                    return
                if plan is None and standin.planner is not None:
                    plan = standin.planner(self.path, body)
                if plan is None:
                    plan = tool_plan(self.path, body)
                if plan is None:
                    plan = image_plan(self.path, body)
                if plan is None:
                    plan = default_plan(self.path, body, standin.reasoning_field)
                if plan.status != 200:
                    self.send_response(plan.status)
                    for k, v in {"Content-Type": "application/json", **plan.headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(plan.body)))
                    self.end_headers()
                    self.wfile.write(plan.body)
                    return
                self.send_response(200)
                sse = self.path not in ("/api/chat", "/api/generate")
                self.send_header("Content-Type", "text/event-stream" if sse else "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                due = time.monotonic()
                for i, chunk in enumerate(plan.chunks):
                    if plan.hold is not None and i == plan.hold_at:
                        plan.hold.wait(30)
                    if plan.delays is not None:  # the pace of a real server, against the clock:
                        due += plan.delays[i]  # one late wake-up does not delay the rest
                        time.sleep(max(0.0, due - time.monotonic()))
                    if plan.cut_after is not None and i == plan.cut_after:
                        # closed without the last chunk, as when the server process dies (an
                        # RST instead would make the client's kernel drop data not yet read)
                        self.wfile.close()  # the file objects hold the socket open too
                        self.rfile.close()
                        self.connection.close()
                        self.close_connection = True
                        self.wfile = io.BytesIO()  # the base class flushes it after this
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hold(self) -> threading.Event:
        event = threading.Event()
        self.holds.append(event)
        return event

    def stop(self) -> None:
        for event in self.holds:
            event.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:  # kept-alive connections die with the server, as with a real one
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

