"""The agent's record of measured LLM speeds, for `heddle models calibrate` (learning from use).

After every attempt that ran a local model and finished, one JSON line goes to
``<data_dir>/perf-records.jsonl``: this node's device (or the figures it measured about
itself), the catalog model and quant, token counts, and the time to first token and decode
tokens/s the backend measured from the stream (heddle.models.learned.PerfRecord). Cloud calls
are not recorded: their speed is the provider's, not this fleet's. A failed write is logged
and the agent goes on: the record is an aid, not part of the task.

Records are kept in memory and written together, off the event loop, `FLUSH_EVERY_S` after
the first of them: one thread hand-off, file open and write per batch. (A thread, an open
and an append per finished attempt took the agent's loop and GIL ~160 times a second with
34 streams in benchmarks/bench_gateway.py.) The first batch also imports the fitting code
(seconds on a busy machine), off the loop too. `close` writes what is left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heddle.live.protocol import MeasuredDevice, TaskSpec

__all__ = ["FLUSH_EVERY_S", "RECORDS_NAME", "PerfLog"]

log = logging.getLogger("heddle.live.agent")

RECORDS_NAME = "perf-records.jsonl"
FLUSH_EVERY_S = 1.0
"""How long a record waits for others to be written with it (a calibration reads the file
minutes or days later)."""
_LOCAL_BACKENDS = frozenset({"ollama", "openai", "lm-studio", "mlx"})


@dataclass(slots=True)
class PerfLog:
    path: Path
    node: str
    device: str | None
    measured: MeasuredDevice | None = None
    _warned: bool = False
    _pending: list[tuple[TaskSpec, dict[str, Any], float]] = field(default_factory=list)

    def observe(self, task: TaskSpec, result: Any) -> bool:
        """Keep the record of a finished attempt if it ran a catalog model locally (on the
        event loop; written within FLUSH_EVERY_S)."""
        if not isinstance(result, dict) or result.get("backend") not in _LOCAL_BACKENDS:
            return False
        if task.model is None or task.quant is None or (self.device is None and self.measured is None):
            return False  # an unnamed model or machine: nothing the fit could use
        self._pending.append((task, result, time.time()))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_later(FLUSH_EVERY_S, self._flush)
        return True

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        asyncio.get_running_loop().run_in_executor(None, self.write, batch)

    def close(self) -> None:
        """Write what is kept (the agent is leaving)."""
        batch, self._pending = self._pending, []
        self.write(batch)

    def write(self, batch: list[tuple[TaskSpec, dict[str, Any], float]]) -> int:
        """Append ``batch``'s records; how many were written."""
        if not batch:
            return 0
        from heddle.models.learned import PerfRecord

        lines = []
        for task, result, at in batch:
            try:  # one record at a time: a backend's odd figure loses its own record only
                lines.append(PerfRecord(
                    node=self.node, device=self.device, backend=result["backend"], model=task.model,
                    quant=task.quant, prompt_tokens=result.get("prompt_tokens") or 0,
                    output_tokens=result.get("output_tokens") or 0, ttft_s=result.get("ttft_s") or None,
                    decode_tokens_per_s=result.get("decode_tokens_per_s") or None, at=at,
                    measured=None if self.device is not None or self.measured is None else
                    self.measured.figures(),
                ).model_dump_json(exclude_none=True) + "\n")
            except ValueError as exc:
                self._warn(f"task {task.id}: {exc}")
        if not lines:
            return 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write("".join(lines))
        except OSError as exc:
            self._warn(str(exc))
            return 0
        return len(lines)

    def _warn(self, why: str) -> None:
        if not self._warned:  # once: the agent goes on, and so do its attempts
            self._warned = True
            log.warning("cannot record LLM speeds in %s: %s", self.path, " ".join(why.split()))
