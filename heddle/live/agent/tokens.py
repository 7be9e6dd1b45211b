"""An LLM attempt's output streamed to whoever submitted it (protocol `TOKENS` subject).

Asked for per assignment (executor option ``stream_tokens``): the output the backend reads
goes out as `TokenChunk`s on core NATS, in order, numbered per attempt; the attempt's end
follows as a chunk with ``done`` set, the result's usage and (protocol 1.9) the tool calls the
model made (the result's ``tool_calls``); an embedding attempt's vectors (1.10) go as chunks of
``embeddings`` before it, each under the message size (`TokenSink.vectors`), the closing
chunk's usage counting them; a reasoning model's thinking (1.12) goes as chunks of ``thinking``,
in order with the text's (`TokenSink.thinking`). An attempt's first chunk is
queued at once (no wait is added to the time to first token), and a later piece goes out
when the event loop turns if nothing went out for `COALESCE_S`; else it waits until
`COALESCE_S` after the last flush, and everything due then goes out together: a stream's
pieces in that window as one chunk, all streams' chunks in one write to NATS, made there and
then (`publish_now`: not a turn of the loop later, nor another at the NATS client's flush).
A node streaming many requests sends fewer, larger writes instead of one per token; a lone
stream waits for no timer.
Best effort: the task's outcome is reported to the control plane as always, whatever happens
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from pydantic import ValidationError

from heddle.events.jetstream_acks import publish_now, write_pending
from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError
from heddle.live.backends.generation import NOT_SENT

__all__ = ["COALESCE_S", "USAGE_FIELDS", "TextChunks", "TokenPublisher", "TokenSink", "wants_tokens"]

USAGE_FIELDS = (
    "backend", "server", "model_used", "prompt_tokens", "output_tokens", "output_tokens_counted",
    "finish_reason", "ttft_s", "decode_tokens_per_s", "duration_s", "cost_usd", "offer",
    NOT_SENT, "embeddings", "dimensions", "reasoning_tokens",
)
"""What of an LLM result the closing chunk carries (the text has been sent already)."""
COALESCE_S = 0.002
"""Shortest time between flushes, so the longest a piece waits for others to go out with it:
a fifth of the gap between tokens of a 100 tokens/s model, so a reader sees no difference,
while a node with 50 streams of 100 tokens/s makes ~500 writes a second to NATS instead of
~5000."""


def wants_tokens(assignment: p.Assignment) -> bool:
    return assignment.executor.options.get(p.STREAM_TOKENS_OPTION) is True


class TokenPublisher:
    """The node's one way out for chunks: sinks with pieces pending are flushed together, and
    their chunks published in order and written to the socket in one write at once; only when
    the client cannot take them so (`publish_now` False: not connected, say) a task publishes
    them, and what is queued after waits for it (the order holds)."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.due: dict[TokenSink, None] = {}  # sinks with pieces pending, in the order they came
        self.out: list[tuple[str, bytes]] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_at = 0.0  # loop time the timer fires at
        self._last_go = -COALESCE_S  # loop time of the last flush
        self._task: asyncio.Task | None = None

    def mark(self, sink: TokenSink, at_once: bool) -> None:
        """``sink`` has pieces to send: now if ``at_once``, when the loop turns if nothing went
        out for COALESCE_S, else COALESCE_S after the last flush. A lone stream's pieces go
        out as read (no timer each); many streams' go together, at most one write per
        COALESCE_S."""
        self.due[sink] = None
        if at_once:  # now, with every other sink's pieces pending
            if self._timer is not None:
                self._timer.cancel()
            self._go()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._last_go + COALESCE_S)
        if self._timer is not None:
            if self._timer_at <= at:
                return  # the flush due already is soon enough
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_soon(self._go) if at <= now else loop.call_at(at, self._go)

    def send(self, subject: str, data: bytes) -> None:
        """Queue ``data`` after everything queued before it (the caller flushes with `mark`)."""
        self.out.append((subject, data))

    def _go(self) -> None:
        self._timer = None
        self._last_go = asyncio.get_running_loop().time()
        due, self.due = self.due, {}
        for sink in due:
            sink.flush()
        if self.out and self._task is None and not self._send_now():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def _send_now(self) -> bool:
        """Publish what is queued and write it to the socket now, in one write (no drain task
        is in flight: nothing queued before it is still to go); False: what is left goes by
        the task."""
        sent = 0
        for subject, data in self.out:
            if not publish_now(self.nc, subject, data, write=False):
                break
            sent += 1
        if sent:
            write_pending(self.nc)
            del self.out[:sent]
        return not self.out

    async def _drain(self) -> None:
        try:
            while self.out:
                batch, self.out = self.out, []
                for subject, data in batch:
                    with contextlib.suppress(Exception):  # best effort: outcomes go by the report
                        await self.nc.publish(subject, data)
                write_pending(self.nc)  # on the socket now, not at the NATS client's next flush
        finally:
            self._task = None


class TextChunks:
    """`p.encode` of one attempt's text `TokenChunk`s (``field``: or its ``thinking`` ones), as
    bytes put around the varying fields: the fixed ones are validated once, by the model, when
    the attempt starts. The same JSON
    as the model's (tests/live/test_token_encoding.py holds them equal) for a third of the
    CPU (~3 us a chunk, ~10 us through the model): a node streaming 35 requests encodes
    ~3,500 chunks a second. Anything unusual (a
    text JSON cannot carry as UTF-8, an oversized chunk) goes through the model, which
    refuses it as before."""

    __slots__ = ("_field", "_fixed", "_template")

    def __init__(self, sender: str, node_id: str, task_id: str, attempt: int, field: str = "text") -> None:
        self._fixed = {"sender": sender, "node_id": node_id, "task_id": task_id, "attempt": attempt}
        self._field = field
        data = self.encode_model(0, 0.0, 0, **{field: _MARK})
        head, rest = data.replace(b"%", b"%%").split(b'"seq":0,"sent_at":0.0,', 1)
        middle, rest = rest.split(b'"index":0,', 1)
        between, tail = rest.split(encode_basestring(_MARK).encode(), 1)
        self._template = head + b'"seq":%d,"sent_at":%a,' + middle + b'"index":%d,' + between + b"%s" + tail

    def encode(self, seq: int, sent_at: float, index: int, text: str) -> bytes:
        if seq >= 0 and index >= 0 and math.isfinite(sent_at):
            try:
                data = self._template % (seq, sent_at, index, encode_basestring(text).encode())
            except UnicodeEncodeError:  # a lone surrogate: the model says what it makes of it
                pass
            else:
                if len(data) <= p.MAX_MESSAGE_BYTES:
                    return data
        return self.encode_model(seq, sent_at, index, **{self._field: text})

    def encode_model(self, seq: int, sent_at: float, index: int, **fields: Any) -> bytes:
        """Any chunk of the attempt (the last one carries usage or an error), through the model."""
        return p.encode(p.TokenChunk(seq=seq, sent_at=sent_at, index=index, **self._fixed, **fields))


_MARK = "\x00mark\x00"
"""Stands for the text while the fixed bytes are cut out of a model-made chunk."""


class TokenSink:
    """Publishes one attempt's chunks; `__call__` is the executor's ``Progress.on_text``."""

    def __init__(self, out: TokenPublisher, sender: str, node_id: str, assignment: p.Assignment,
                 next_seq: Callable[[], int]) -> None:
        self.out, self.sender, self.node_id, self.next_seq = out, sender, node_id, next_seq
        self.task_id, self.attempt = assignment.task.id, assignment.attempt
        self.subject = p.subject(p.TOKENS, node=node_id, task=assignment.task.id)
        self.text_chunks = TextChunks(sender, node_id, self.task_id, self.attempt)
        self.thought_chunks: TextChunks | None = None  # made at the first thinking chunk
        self.index = 0
        self.pending: list[str] = []  # pieces read and not sent yet
        self.thought: list[str] = []  # thinking pieces read and not sent yet (never both pending)
        self.stats: Any = None  # the HEDDLE_LOOP_STATS debug mode (LoopStats): stage instants

    def _send(self, **fields: Any) -> None:
        chunks = self.text_chunks
        if fields.keys() == {"text"}:
            data = chunks.encode(self.next_seq(), time.time(), self.index, fields["text"])
        elif fields.keys() == {"thinking"}:
            if self.thought_chunks is None:
                self.thought_chunks = TextChunks(self.sender, self.node_id, self.task_id, self.attempt,
                                                 field="thinking")
            data = self.thought_chunks.encode(self.next_seq(), time.time(), self.index, fields["thinking"])
        else:
            data = chunks.encode_model(self.next_seq(), time.time(), self.index, **fields)
        self.index += 1
        self.out.send(self.subject, data)
        if self.stats is not None and self.index == 1:
            self.stats.stamp(self.task_id, "a_chunk_sent")

    def __call__(self, text: str) -> None:
        if self.thought:  # the thinking read before goes first, in its own chunk
            self._send_thought()
        self.pending.append(text)
        if len(self.pending) == 1:
            if self.stats is not None and self.index == 0:
                self.stats.stamp(self.task_id, "a_first_text")
            self.out.mark(self, at_once=self.index == 0)

    def thinking(self, text: str) -> None:
        """A piece of the model's thinking (``Progress.on_thinking``): coalesced as text is,
        in chunks of its own, after the text read before it."""
        if self.pending:
            self.flush()
        self.thought.append(text)
        if len(self.thought) == 1:
            self.out.mark(self, at_once=self.index == 0)

    def _send_thought(self) -> None:
        text, self.thought = "".join(self.thought), []
        self._send(thinking=text)

    def flush(self) -> None:
        if self.thought:
            self._send_thought()
        if self.pending:
            text, self.pending = "".join(self.pending), []
            self._send(text=text)

    def vectors(self, vectors: list[list[float]]) -> None:
        """An embedding attempt's vectors, in order, as few chunks as fit under the message
        size: each float counted at its longest JSON (`p.FLOAT_JSON_BYTES`), so every chunk
        fits (a vector that alone would not: ExecutionError, the attempt fails saying so)."""
        self.flush()
        group: list[list[float]] = []
        room = p.EMBEDDING_CHUNK_BYTES
        for vector in vectors:
            size = p.FLOAT_JSON_BYTES * len(vector) + 2
            if size > p.EMBEDDING_CHUNK_BYTES:
                raise ExecutionError(f"embeddings: a vector of {len(vector)} numbers does not fit "
                                     f"in a message ({p.MAX_MESSAGE_BYTES} bytes)")
            if size > room:
                self._send(embeddings=group)
                group, room = [], p.EMBEDDING_CHUNK_BYTES
            group.append(vector)
            room -= size
        if group:
            self._send(embeddings=group)
        self.out.mark(self, at_once=True)

    def end(self, outcome: str, reason: str | None, result: Any) -> None:
        self.flush()
        usage = ({k: result[k] for k in USAGE_FIELDS if k in result}
                 if isinstance(result, dict) else None)
        calls = result.get("tool_calls") if isinstance(result, dict) and outcome == "ok" else None
        try:
            self._send(done=True, outcome=outcome, reason=reason, usage=usage, tool_calls=calls or None)
        except (ValidationError, p.ProtocolError):
            # tool calls a chunk cannot carry (over MAX_MESSAGE_BYTES, say): no closing chunk,
            # and the caller's gateway takes the end from the task's event, as for a lost one
            pass
        self.out.mark(self, at_once=True)
