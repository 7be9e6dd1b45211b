"""The agent's record of measured LLM speeds, for `heddle models calibrate` (learning from use).

After every attempt that ran a local model and finished, one JSON line goes to
``<data_dir>/perf-records.jsonl``: this node's device (or the figures it measured about
itself), the catalog model and quant, token counts, and the time to first token and decode
tokens/s the backend measured from the stream (heddle.models.learned.PerfRecord). Cloud calls
are not recorded: their speed is the provider's, not this fleet's. A failed write is logged
and the agent goes on: the record is an aid, not part of the task.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heddle.live.protocol import MeasuredDevice, TaskSpec

__all__ = ["RECORDS_NAME", "PerfLog"]

log = logging.getLogger("heddle.live.agent")

RECORDS_NAME = "perf-records.jsonl"
_LOCAL_BACKENDS = frozenset({"ollama", "openai", "lm-studio", "mlx"})


@dataclass(slots=True)
class PerfLog:
    path: Path
    node: str
    device: str | None
    measured: MeasuredDevice | None = None
    _warned: bool = False

    def observe(self, task: TaskSpec, result: Any) -> bool:
        """Append the record of a finished attempt if it ran a catalog model locally."""
        if not isinstance(result, dict) or result.get("backend") not in _LOCAL_BACKENDS:
            return False
        if task.model is None or task.quant is None or (self.device is None and self.measured is None):
            return False  # an unnamed model or machine: nothing the fit could use
        from heddle.models.learned import PerfRecord

        try:
            record = PerfRecord(
                node=self.node, device=self.device, backend=result["backend"], model=task.model,
                quant=task.quant, prompt_tokens=result.get("prompt_tokens") or 0,
                output_tokens=result.get("output_tokens") or 0, ttft_s=result.get("ttft_s") or None,
                decode_tokens_per_s=result.get("decode_tokens_per_s") or None, at=time.time(),
                measured=None if self.device is not None or self.measured is None else
                self.measured.figures(),
            )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(record.model_dump_json(exclude_none=True) + "\n")
        except (OSError, ValueError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot record LLM speeds in %s: %s", self.path, exc)
            return False
        return True
