"""An LLM attempt's output streamed to whoever submitted it (protocol `TOKENS` subject).

Asked for per assignment (executor option ``stream_tokens``): the output the backend reads
goes out as `TokenChunk`s on core NATS, in order, numbered per attempt; the attempt's end
follows as a chunk with ``done`` set and the result's usage. Pieces read in one turn of the
event loop (several lines of one network read) go out as one chunk, sent when the loop turns:
no wait is added, and a busy agent sends fewer, larger messages. Best effort: the task's
outcome is reported to the control plane as always, whatever happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from heddle.live import protocol as p

__all__ = ["USAGE_FIELDS", "TokenSink", "wants_tokens"]

USAGE_FIELDS = (
    "backend", "server", "model_used", "prompt_tokens", "output_tokens", "output_tokens_counted",
    "finish_reason", "ttft_s", "decode_tokens_per_s", "duration_s", "cost_usd", "offer",
)
"""What of an LLM result the closing chunk carries (the text has been sent already)."""


def wants_tokens(assignment: p.Assignment) -> bool:
    return assignment.executor.options.get(p.STREAM_TOKENS_OPTION) is True


class TokenSink:
    """Publishes one attempt's chunks; `__call__` is the executor's ``Progress.on_text``."""

    def __init__(self, nc: Any, sender: str, node_id: str, assignment: p.Assignment,
                 next_seq: Callable[[], int]) -> None:
        self.nc, self.sender, self.node_id, self.next_seq = nc, sender, node_id, next_seq
        self.task_id, self.attempt = assignment.task.id, assignment.attempt
        self.subject = p.subject(p.TOKENS, node=node_id, task=assignment.task.id)
        self.index = 0
        self.pending: list[str] = []  # pieces read in this turn of the loop, not sent yet

    def _send(self, **fields: Any) -> None:
        chunk = p.TokenChunk(sender=self.sender, seq=self.next_seq(), sent_at=time.time(),
                             node_id=self.node_id, task_id=self.task_id, attempt=self.attempt,
                             index=self.index, **fields)
        self.index += 1
        # nats-py's publish only appends to its buffer before its first await: tasks created
        # in order publish in order.
        asyncio.get_running_loop().create_task(self._publish(p.encode(chunk)))

    async def _publish(self, data: bytes) -> None:
        with contextlib.suppress(Exception):  # best effort: the outcome goes by the report
            await self.nc.publish(self.subject, data)

    def __call__(self, text: str) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.pending.append(text)

    def _flush(self) -> None:
        if self.pending:
            text, self.pending = "".join(self.pending), []
            self._send(text=text)

    def end(self, outcome: str, reason: str | None, result: Any) -> None:
        self._flush()
        usage = ({k: result[k] for k in USAGE_FIELDS if k in result}
                 if isinstance(result, dict) else None)
        self._send(done=True, outcome=outcome, reason=reason, usage=usage)
