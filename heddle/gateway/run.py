"""One request's task, followed from submission to its end: placement (or a 429 when the
fleet is saturated and the wait would be longer than the caller's bound), then the output as
the executing agent produces it, then the usage and where it ran.

Which attempt's output counts: the first attempt that sends any. If that attempt is lost
before the caller got any text (node gone, cancelled there), the task's retry is followed
instead, and so it is always for a request answered in one reply (``streaming`` False: the
caller gets the retry's result); once streamed text has gone out, a lost attempt ends the
request with a clean error and the task is cancelled (its retry would stream to nobody). The outcome follows the control plane:
an agent's closing chunk ends a success at once; the task's events tell the rest (a retry,
a failure, a rejection) and stand in for a closing chunk lost in transit.

Whose output it is: only chunks from the node and attempt the control plane placed the task on
(the submit's answer, then each TaskPlaced) are taken. The cluster's authorization already
keeps an agent to its own subjects (``heddle.v1.tokens.<node>.*``); this keeps a node from
speaking for a task it does not run. A chunk that overtakes its TaskPlaced waits for it.

A reasoning model's thinking (``TokenChunk.thinking``, protocol 1.12) is kept apart from the
text (``thought``) and yielded by `pieces` as `Thought` pieces only to a caller that shows it
(``show_thinking``): a route that does not know of it gets the answer alone, never the
thinking mixed into it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from heddle.gateway.bridge import Bridge
from heddle.gateway.errors import GatewayError
from heddle.gateway.keys import Rules
from heddle.gateway.tasks import Chat, chat_task, new_job_id
from heddle.gateway.tools import calls_from_result
from heddle.live.agent.tokens import USAGE_FIELDS
from heddle.live.backends.generation import NOT_SENT
from heddle.live.control.book import CANCELLED, REJECTED
from heddle.live.protocol import ToolCall

__all__ = ["TaskRun"]

_TIMED_OUT = ("timeout", None)
_OUTPUT_LOST = ("lost", None)
GAP_WAIT_S = 10.0
"""How long an answer whose chunks came with a gap waits, once its attempt has said it ended
well, for the TaskCompleted that has the whole text (`TaskRun.pieces`)."""
"""Queued for a request when its whole time is up (`TaskRun._next`)."""
MAX_HELD = 1024
"""Chunks kept from a node and attempt not placed (yet): a retry's first chunks may overtake its
TaskPlaced; more than this from elsewhere are dropped, oldest first (a forger gains nothing)."""


class Thought(str):
    """A piece of the model's thinking, as `TaskRun.pieces` yields it (``show_thinking``)."""

    __slots__ = ()


class TaskRun:
    def __init__(self, bridge: Bridge, chat: Chat, rules: Rules, *, timeout_s: float,
                 task_timeout_s: float | None = None) -> None:
        self.bridge, self.chat, self.rules = bridge, chat, rules
        self.timeout_s, self.task_timeout_s = timeout_s, task_timeout_s
        self.job_id = new_job_id(rules.owner)
        self.item = chat_task(chat, rules, self.job_id, task_timeout_s)
        self.task_id = self.item.task.id
        self.created = int(time.time())
        self.node = ""
        self.offer = ""  # the cloud API offer the node calls for it ("": none), as placed
        self.attempt: int | None = None  # the attempt whose output the caller gets
        self.lost: set[int] = set()  # attempts given up on: their late chunks are not followed
        self._gapped: int | None = None  # an attempt whose chunks came with a gap: see `pieces`
        self.placements: set[tuple[str, int]] = set()  # (node, attempt) the control plane chose
        self._held: deque[Any] = deque(maxlen=MAX_HELD)  # chunks waiting for their placement
        self.streaming = True  # the text goes out as it comes (False: in one reply at the end)
        self.text: list[str] = []  # what went out
        self.thought: list[str] = []  # the model's thinking, apart from the text (1.12)
        self.show_thinking = False  # `pieces` yields the thinking too (as `Thought`s)
        self.vectors: list[tuple[float, ...]] = []  # an embedding request's, in input order (1.10)
        self.usage: dict[str, Any] = {}
        self.tool_calls: tuple[ToolCall, ...] = ()  # the model's, from the closing chunk (1.9)
        self.ended = False  # the task ended (or was cancelled by us): nothing to cancel
        self._backlog: deque[tuple[str, Any]] = deque()
        self._deadline = time.monotonic() + timeout_s
        self._timer: asyncio.TimerHandle | None = None  # puts `_TIMED_OUT` in the follow's queue

    # -- placement -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Submit and wait for a place: GatewayError (429 with Retry-After) if none comes
        within the caller's bound, or the reason the task cannot run."""
        follow = self.bridge.follow(self.task_id)
        if self.chat.images:  # handed to the node it is placed on, when it asks
            self.bridge.images.hold(self.task_id, list(self.chat.images), self.placements)
        try:
            placed = await self.bridge.submit(self.job_id, self.rules.owner, self.item)
        except BaseException:
            self.bridge.unfollow(self.task_id)
            self.bridge.images.release(self.task_id)
            raise
        status = placed["status"]
        if status == "placed":
            self.node, self.offer = placed["node"], placed.get("offer", "")
            self.placements.add((self.node, placed["attempt"]))
            self.bridge.images.placed(self.task_id)
            return
        if status != "waiting":
            self.ended = True
            raise _ended_error(status, placed.get("reason") or status, before_start=True)
        estimate, reason = placed.get("retry_after_s"), placed.get("reason") or "no free place"
        bound = self.rules.max_wait_s
        if bound <= 0 or (estimate is not None and estimate > bound):
            raise self._saturated(reason, estimate)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns a result that came in
            # the turn the caller's disconnect cancelled this task, and the cancel is lost (the
            # request then runs to nobody: tests/gateway/test_cancel_race.py)
            async with asyncio.timeout(bound):
                await self._placement(follow)
        except TimeoutError:
            left = None if estimate is None else max(estimate - bound, 1.0)
            raise self._saturated(reason + f" (waited {bound:g} s)", left) from None

    async def _placement(self, follow: Any) -> None:
        """Until the task's TaskPlaced (or the event that ends it: GatewayError)."""
        while True:
            item = await follow.items.get()
            self._backlog.append(item)
            kind, x = item
            if kind == "chunk":
                continue  # taken once its TaskPlaced is here (`pieces`)
            if x.event_type == "TaskPlaced":
                self.node, self.offer = x.payload.get("target", self.node), x.payload.get("offer", "")
                return
            ended = _ending(x)
            if ended is not None:
                self.ended = True
                raise _ended_error(ended, x.payload.get("reason", ""), before_start=True)

    def _saturated(self, reason: str, estimate: float | None) -> GatewayError:
        self.ended = True
        self.bridge.cancel_soon(self.task_id, "no place within the caller's wait bound")
        after = 1.0 if estimate is None else max(estimate, 1.0)
        return GatewayError(429, f"the fleet has no free place for this request now ({reason}); "
                            f"retry in about {math.ceil(after)} s", "fleet_saturated",
                            retry_after_s=after)

    # -- output ----------------------------------------------------------------------------------
    async def _next(self) -> tuple[str, Any]:
        item = self._backlog.popleft() if self._backlog else None
        if item is None:
            items = self.bridge.follows[self.task_id].items
            if self._timer is None:  # one timer for the whole answer, not one per wait
                self._timer = asyncio.get_running_loop().call_later(
                    max(self._deadline - time.monotonic(), 0), items.put_nowait, _TIMED_OUT)
            item = items.get_nowait() if not items.empty() else await items.get()
        if item is _OUTPUT_LOST:
            raise GatewayError(502, f"part of the answer was lost in transit from node {self.node} "
                               f"and the task's completion did not follow within {GAP_WAIT_S:g} s "
                               f"(task {self.task_id}); retry the request", "output_lost")
        if item is _TIMED_OUT:
            raise GatewayError(504, f"no answer within {self.timeout_s:g} s (task {self.task_id} "
                               f"on {self.node or 'no node yet'})", "timeout")
        return item

    async def pieces(self) -> AsyncIterator[str]:
        """The output as it is produced (and the thinking, as `Thought`s, if
        ``show_thinking``); ends with ``usage`` set, or raises GatewayError."""
        expected = 0
        while True:
            kind, x = await self._next()
            if kind == "chunk":
                if (x.node_id, x.attempt) not in self.placements:
                    self._held.append(x)  # not (yet) placed there: see `_placed`
                    continue
                if self.attempt is None and not (x.done and not x.index) and x.attempt not in self.lost:
                    self.attempt, expected = x.attempt, 0
                if x.attempt == self._gapped and x.done and x.outcome == "ok":
                    self._wait_for_completion()
                if x.attempt != self.attempt or x.attempt == self._gapped:
                    continue  # another attempt's output (a superseded one, or a failed retry)
                self.node = x.node_id
                if x.index != expected:
                    if x.embeddings is None:
                        # chunks lost in transit (core NATS delivers at most once): the text
                        # would have a hole, so this attempt's later chunks are not passed on
                        # and the answer ends from its TaskCompleted, whose result has the
                        # whole text (or from the event that says how the attempt ended)
                        self._gapped = x.attempt
                        continue
                    expected = x.index  # an embedding's count check says what is missing
                expected += 1
                if x.embeddings is not None:
                    self.vectors.extend(x.embeddings)  # the caller gets them in one reply
                    continue
                if x.thinking is not None:
                    piece, expected = self._more(x.thinking, expected, thinking=True)
                    self.thought.append(piece)
                    if self.show_thinking:
                        yield Thought(piece)
                    continue
                if not x.done:
                    piece, expected = self._more(x.text, expected)
                    first = not self.text
                    if first:
                        self.bridge.stamp(self.task_id, "g_first_piece")
                    self.text.append(piece)
                    yield piece
                    if first:  # the caller has written it (it asks for the next one)
                        self.bridge.stamp(self.task_id, "g_first_written")
                    continue
                if x.outcome == "ok":
                    self._finish(x.usage or {}, x.tool_calls or ())
                    return
                if x.outcome == "failed":
                    self.ended = True
                    raise GatewayError(502, f"the model failed on node {x.node_id}: {x.reason}",
                                       "task_failed")
                self._attempt_lost(f"cancelled on {x.node_id}: {x.reason}")  # the core retries it
                continue
            event, payload = x.event_type, x.payload
            if event == "TaskPlaced":
                self._placed(payload.get("target", self.node), payload.get("attempt"), payload.get("offer", ""))
            elif _ending(x) is not None:
                self.ended = True
                raise _ended_error(_ending(x), payload.get("reason", ""), before_start=False)
            elif event == "TaskFailed":
                if payload.get("attempt") in (None, self.attempt):
                    self._attempt_lost(payload.get("reason", "attempt lost"))
            elif event == "TaskCompleted":  # the closing chunk was lost: the event has it all
                result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
                thought, shown = result.get("thinking") or "", "".join(self.thought)
                if thought.startswith(shown) and len(thought) > len(shown):
                    self.thought.append(thought[len(shown):])
                    if self.show_thinking:
                        yield Thought(thought[len(shown):])
                text, sent = result.get("text") or "", "".join(self.text)
                if text.startswith(sent) and len(text) > len(sent):
                    self.text.append(text[len(sent):])
                    yield text[len(sent):]
                self.node = payload.get("node", self.node)
                self.attempt = payload.get("attempt", self.attempt)
                self._finish({k: result[k] for k in USAGE_FIELDS if k in result},
                             calls_from_result(result))
                return

    def _more(self, text: str, expected: int, thinking: bool = False) -> tuple[str, int]:
        """``text`` with the followed attempt's chunks of the same kind (text, or
        ``thinking``) that have arrived already: one write to the caller for what came
        together (a busy gateway writes less, a quiet one the same)."""
        pieces = [text]
        follow = self.bridge.follows.get(self.task_id)
        while self._backlog or (follow is not None and not follow.items.empty()):
            item = self._backlog.popleft() if self._backlog else follow.items.get_nowait()
            kind, y = item
            if (kind != "chunk" or y.attempt != self.attempt or y.done or y.embeddings is not None
                    or y.index != expected or (y.node_id, y.attempt) not in self.placements
                    or (y.thinking is not None) != thinking):
                self._backlog.appendleft(item)
                break
            pieces.append(y.thinking if thinking else y.text)
            expected = y.index + 1
        return "".join(pieces), expected

    def _wait_for_completion(self) -> None:
        """The gapped attempt ended well: its TaskCompleted comes within `GAP_WAIT_S`, or the
        caller gets an error saying the output was lost (the answer's own deadline, if sooner)."""
        if self._timer is not None:
            self._timer.cancel()
        items = self.bridge.follows[self.task_id].items
        wait = min(GAP_WAIT_S, max(self._deadline - time.monotonic(), 0))
        self._timer = asyncio.get_running_loop().call_later(
            wait, items.put_nowait, _OUTPUT_LOST if wait == GAP_WAIT_S else _TIMED_OUT)

    def _placed(self, node: str, attempt: int | None, offer: str) -> None:
        """A (re)placement: its node's chunks are taken from now on, the held ones first."""
        self.node, self.offer = node, offer
        if attempt is None:
            return
        self.placements.add((node, attempt))
        self.bridge.images.placed(self.task_id)
        mine = [c for c in self._held if (c.node_id, c.attempt) == (node, attempt)]
        if mine:
            others = [c for c in self._held if (c.node_id, c.attempt) != (node, attempt)]
            self._held.clear()
            self._held.extend(others)
            self._backlog.extendleft(("chunk", c) for c in reversed(mine))

    def _attempt_lost(self, reason: str) -> None:
        """The attempt being followed will not finish: follow the retry if nothing went out."""
        if (self.text or (self.thought and self.show_thinking)) and self.streaming:
            raise GatewayError(502, f"the node running this request was lost mid-stream ({reason}); "
                               f"the output so far is incomplete", "node_lost")
        if self.attempt is not None:
            self.lost.add(self.attempt)
        self.attempt = None
        self.text.clear()
        self.thought.clear()
        self.vectors.clear()

    def _finish(self, usage: dict[str, Any], tool_calls: tuple[ToolCall, ...]) -> None:
        self.ended = True
        self.usage, self.tool_calls = usage, tool_calls
        if isinstance(usage.get("offer"), str):  # what the attempt that answered called
            self.offer = usage["offer"]

    # -- the end ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop following; a task still running for a caller that has gone is cancelled."""
        if self._timer is not None:
            self._timer.cancel()
        self.bridge.unfollow(self.task_id)
        self.bridge.images.release(self.task_id)
        if not self.ended:
            self.ended = True
            self.bridge.cancel_soon(self.task_id, "the caller went away or the request failed")

    @property
    def output_text(self) -> str:
        return "".join(self.text)

    def cut_at_bound(self) -> bool:
        """The output stopped at its token bound: a local server's ``length`` (Ollama's
        done_reason, OpenAI's finish_reason) or a Claude offer's ``max_tokens``."""
        return self.usage.get("finish_reason") in ("length", "max_tokens")

    @property
    def thinking_text(self) -> str | None:
        """The model's thinking, whole (None: it sent none)."""
        return "".join(self.thought) if self.thought else None

    def reported(self, name: str) -> float | None:
        """A figure of the usage the agent relayed from the model server (``prompt_tokens``,
        ``duration_s``...), or None if it sent none or one that is not a number >= 0: a
        server's odd count must not break an answer that went out whole."""
        value = self.usage.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value if math.isfinite(value) and value >= 0 else None

    def counts(self) -> tuple[int, int]:
        """(prompt tokens, completion tokens): the server's counts, else the gateway's."""
        prompt = self.reported("prompt_tokens") or self.item.task.prompt_tokens
        completion = self.reported("output_tokens")
        return int(prompt), int(completion if completion is not None
                                else len(self.text) + len(self.thought))

    def where(self) -> dict[str, Any]:
        """Where it ran, for the usage block and the headers; ``options_not_sent``: the
        request's generation options its backend could not send to its server, if any."""
        where = {"task_id": self.task_id, "node": self.node, "attempt": self.attempt,
                 "privacy": self.rules.privacy.value, "owner": self.rules.owner,
                 "backend": self.usage.get("backend"), "model_used": self.usage.get("model_used"),
                 "finish_reason": self.usage.get("finish_reason")}
        if self.usage.get("offer"):  # it ran at a cloud API offer: which, and its price
            where["offer"], where["cost_usd"] = self.usage["offer"], self.usage.get("cost_usd")
        if self.usage.get(NOT_SENT):
            where[NOT_SENT] = self.usage[NOT_SENT]
        return where

    def headers(self) -> dict[str, str]:
        """Where it runs (a stream's, as placed; a reply's, where the answer came from): the
        task, the node, the privacy and, for work at a cloud API offer, the offer (the node
        is then the agent that calls it)."""
        where = {"X-Heddle-Task": self.task_id, "X-Heddle-Node": self.node,
                 "X-Heddle-Privacy": self.rules.privacy.value}
        return where | {"X-Heddle-Offer": self.offer} if self.offer else where


_ENDING = {"TaskRejected": "rejected", "TaskCancelled": "cancelled"}


def _ending(envelope: Any) -> str | None:
    """How a lifecycle event ends its task (rejected, cancelled, failed), or None."""
    if envelope.event_type == "TaskFailed":
        return None if envelope.payload.get("retryable") else "failed"
    return _ENDING.get(envelope.event_type)


def _ended_error(status: str, reason: str, *, before_start: bool) -> GatewayError:
    # Logs from before TaskRejected / TaskCancelled said so in a failure's reason prefix.
    if reason.startswith(REJECTED):
        status, reason = "rejected", reason[len(REJECTED):]
    elif reason.startswith(CANCELLED):
        status, reason = "cancelled", reason[len(CANCELLED):]
    if status == "rejected":
        return GatewayError(400 if before_start else 503, f"the scheduler cannot run this "
                            f"request under its rules: {reason}", "cannot_place")
    if status == "cancelled":
        return GatewayError(503, f"the task was cancelled ({reason})", "cancelled")
    return GatewayError(502, f"the task failed: {reason}", "task_failed")
