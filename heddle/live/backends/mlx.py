"""MLX in-process (the optional ``mlx`` extra: ``pip install 'heddle[mlx]'`` on an Apple-silicon
Mac): the agent loads one model with mlx-lm and streams completions from it, no server between.

mlx-lm is imported on first use, never at import time: a machine without it (Linux, Intel
Macs) loses only this backend, and says why in the failure reason. The model named by the
``mlx_model`` setting (a local directory or a Hugging Face repo already in the local cache:
nothing is downloaded at run time) is loaded by the first task and stays resident.

``mlx_lm.stream_generate`` is a blocking generator that computes each token as it is asked
for; it runs in a worker thread that hands each `GenerationResponse` to the event loop. One
generation at a time (one model, one GPU stream): a cancelled attempt stops its generator at
the next token and the next attempt waits for that, so two never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from heddle.live.agent.executors import ExecutionError, Executor, Progress
from heddle.live.backends.common import StreamMeter, llm_call
from heddle.live.backends.names import ServedModel, catalog_ids
from heddle.live.backends.worker import check_output
from heddle.live.protocol import Assignment

__all__ = ["MlxExecutor", "import_mlx_lm"]

INSTALL_HINT = "install the mlx extra (pip install 'heddle[mlx]') on an Apple-silicon Mac"


def import_mlx_lm() -> Any:
    """The ``mlx_lm`` module (``load``, ``stream_generate``); ExecutionError if it cannot load."""
    try:
        import mlx_lm
    except Exception as exc:  # noqa: BLE001 -- ImportError, or mlx's own load error (libmlx.so)
        raise ExecutionError(f"mlx: mlx-lm is not usable here ({type(exc).__name__}: {exc}); "
                             f"{INSTALL_HINT}") from None
    return mlx_lm


class MlxExecutor(Executor):
    """One mlx-lm model in this process. ``lm`` is the ``mlx_lm`` module (None: imported on
    first use); tests pass an object with the same ``load`` and ``stream_generate``."""

    backend = "mlx"

    def __init__(self, model_path: str, *, kinds: tuple[str, ...] = ("mlx",), lm: Any = None) -> None:
        self.kinds = kinds
        self.model_path = model_path
        self.url = f"in-process:{model_path}"  # where results and reasons say it ran
        self._lm = lm
        self._loaded: tuple[Any, Any] | None = None
        self._lock = asyncio.Lock()
        self._producer: asyncio.Future | None = None
        model, quant = catalog_ids(model_path)
        self.inventory: tuple[ServedModel, ...] = (ServedModel(model_path, model, quant, False),)
        self.discovered_at = time.monotonic()  # the inventory is the setting: known from the start

    # --- the router's view (same as a LocalServer's) -------------------------------------

    async def refresh(self) -> None:
        """Nothing to ask: the one model is the setting."""

    def offers(self, model: str, quant: str | None) -> ServedModel | None:
        served = self.inventory[0]
        return served if served.model == model and quant in (None, served.quant) else None

    def resident_models(self) -> Iterable[tuple[str, str]]:
        return [(m.model, m.quant) for m in self.inventory if m.loaded and m.known]

    # --- running --------------------------------------------------------------------------

    async def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            lm = self._lm = self._lm or import_mlx_lm()
            try:
                self._loaded = await asyncio.to_thread(lm.load, self.model_path)
            except Exception as exc:  # noqa: BLE001 -- a missing path, a bad config, no memory
                raise ExecutionError(f"mlx: cannot load {self.model_path}: "
                                     f"{type(exc).__name__}: {exc}") from None
            self.inventory = (replace(self.inventory[0], loaded=True),)
        return self._loaded

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        call = llm_call(assignment)
        task = assignment.task
        if task.model is not None and self.offers(task.model, task.quant) is None:
            served = self.inventory[0]
            raise ExecutionError(f"mlx: {self.model_path} is {served.model or 'unknown'} "
                                 f"{served.quant or ''}, not {task.model} {task.quant or ''}".rstrip())
        async with self._lock:
            if self._producer is not None:  # a cancelled generation stops at its next token
                await asyncio.wait([self._producer])
            model, tokenizer = await self._model()
            messages = ([{"role": "system", "content": call.system}] if call.system else []) + call.messages
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
            meter = StreamMeter(self.backend, self.url)
            last = await self._stream(model, tokenizer, prompt, call.max_output_tokens, meter, progress)
        if last is None:
            raise ExecutionError(f"mlx at {self.url}: the generator produced nothing")
        result = meter.result(
            model=self.model_path, prompt_tokens=last.prompt_tokens,
            output_tokens=last.generation_tokens, finish_reason=last.finish_reason,
            server_decode_tokens_per_s=last.generation_tps,
            server_prefill_tokens_per_s=last.prompt_tps, cost_usd=0.0, account=task.account,
        )
        return check_output(call.worker, result)

    async def _stream(self, model: Any, tokenizer: Any, prompt: Any, max_tokens: int,
                      meter: StreamMeter, progress: Progress) -> Any:
        """Run the generator in a thread, feed each response's text to ``meter``; the last one."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        lm = self._lm

        def produce() -> None:
            try:
                for response in lm.stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
                    loop.call_soon_threadsafe(queue.put_nowait, ("token", response))
                    if stop.is_set():
                        break
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:  # noqa: BLE001 -- reported as the attempt's failure
                with contextlib.suppress(RuntimeError):  # the loop may be gone at exit
                    loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        self._producer = loop.run_in_executor(None, produce)
        last = None
        try:
            while True:
                kind, item = await queue.get()
                if kind == "end":
                    return last
                if kind == "error":
                    raise ExecutionError(f"mlx at {self.url}: generation failed after "
                                         f"{meter.chunks} tokens: {type(item).__name__}: {item}")
                last = item
                meter.content(item.text, progress)
        finally:
            stop.set()  # on a cancel or a failure too: the thread stops at its next token
