"""MLX in-process (the optional ``mlx`` extra: ``pip install 'heddle[mlx]'`` on an Apple-silicon
Mac): the agent loads one model with mlx-lm and streams completions from it, no server between.

mlx-lm is imported on first use, never at import time: a machine without it (Linux, Intel
Macs) loses only this backend, and says why in the failure reason. The model named by the
``mlx_model`` setting (a local directory or a Hugging Face repo already in the local cache:
nothing is downloaded at run time) is loaded by the first task and stays resident.

``mlx_lm.stream_generate`` is a blocking generator that computes each token as it is asked
for; it runs in a worker thread that hands each `GenerationResponse` to the event loop. One
generation at a time (one model, one GPU stream): a cancelled attempt stops its generator at
the next token and the next attempt waits for that, so two never overlap. Its features
(heddle.live.features, `MlxExecutor.features`): a raw completion, whose prompt goes to
``stream_generate`` as it is (no chat template: mlx-lm tokenizes the string); no tool calling,
no images (mlx-vlm, which runs vision models, is not a dependency), no embeddings and no
suffix (fill in the middle: mlx-lm 0.32's generate and its server's ``/v1/completions`` have
none): such a task is never placed here, and fails with the reason (`MlxExecutor.refuses`) if
it comes.

Generation options (heddle.live.backends.generation) go where mlx-lm takes them, as its own
server does: temperature, top_p, min_p and top_k into ``make_sampler`` (mlx-lm's default
temperature is 0, the likeliest token: top_p/min_p/top_k matter only with a temperature),
the repeat, presence and frequency penalties into ``make_logits_processors``, the seed into
mlx's random state before the generation; stop sequences end the output here (the text that
may begin one is held back until the next token tells). JSON output and ``num_ctx`` have no
place in mlx-lm's generate: they are not sent (the result's ``options_not_sent`` says so).
Nor is ``think``: mlx-lm's generate has no switch for it (its server neither, 0.32), so this
backend does not offer the ``thinking`` feature (a task asking to think goes elsewhere, or is
refused here: heddle.live.features), and a reasoning model run here unasked thinks in band, as its template and weights make it: Qwen3 and
DeepSeek-R1 write ``<think>...</think>`` before the answer, which is split from it here
(`_InBand`: streamed as thinking, the answer after it; stop sequences apply to the answer);
gpt-oss writes its harmony analysis channel, which stays in the text as mlx-lm detokenizes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType, SimpleNamespace
from typing import Any

from heddle.live.agent.executors import ExecutionError, Executor, Progress
from heddle.live.backends.common import LlmCall, StreamMeter, llm_call
from heddle.live.backends.generation import Generation
from heddle.live.backends.names import ServedModel, catalog_ids
from heddle.live.backends.worker import check_output
from heddle.live.features import RAW
from heddle.live.protocol import Assignment

__all__ = ["MlxExecutor", "import_mlx_lm"]

INSTALL_HINT = "install the mlx extra (pip install 'heddle[mlx]') on an Apple-silicon Mac"


SENT = frozenset(["temperature", "top_p", "min_p", "top_k", "seed", "stop", "repeat_penalty",
                  "presence_penalty", "frequency_penalty"])
"""The generation fields an MLX attempt honours (the module's docstring says where)."""
SAMPLER = {"temperature": "temp", "top_p": "top_p", "min_p": "min_p", "top_k": "top_k"}
PROCESSORS = {"repeat_penalty": "repetition_penalty", "presence_penalty": "presence_penalty",
              "frequency_penalty": "frequency_penalty"}
"""Sampling fields -> mlx-lm's ``make_sampler`` and ``make_logits_processors`` arguments."""


def import_mlx_lm() -> Any:
    """What heddle uses of mlx-lm: ``load``, ``stream_generate``, ``make_sampler``,
    ``make_logits_processors`` and ``seed`` (mlx's ``mx.random.seed``); ExecutionError if it
    cannot load."""
    try:
        import mlx.core as mx
        import mlx_lm
        from mlx_lm.sample_utils import make_logits_processors, make_sampler
    except Exception as exc:  # noqa: BLE001 -- ImportError, or mlx's own load error (libmlx.so)
        raise ExecutionError(f"mlx: mlx-lm is not usable here ({type(exc).__name__}: {exc}); "
                             f"{INSTALL_HINT}") from None
    return SimpleNamespace(load=mlx_lm.load, stream_generate=mlx_lm.stream_generate,
                           make_sampler=make_sampler, make_logits_processors=make_logits_processors,
                           seed=mx.random.seed)


def generate_kwargs(lm: Any, gen: Generation) -> dict[str, Any]:
    """``stream_generate``'s sampler and logits processors for ``gen`` (none: mlx-lm's own)."""
    kwargs: dict[str, Any] = {}
    sampler = {arg: gen.sampling[field] for field, arg in SAMPLER.items() if field in gen.sampling}
    if sampler:
        kwargs["sampler"] = lm.make_sampler(**sampler)
    processors = {arg: gen.sampling[field] for field, arg in PROCESSORS.items() if field in gen.sampling}
    if processors:
        kwargs["logits_processors"] = lm.make_logits_processors(**processors)
    return kwargs


class _Stops:
    """The output up to the first of the stop sequences: text that may begin one is held back
    until the next token tells (``hit``: one came, the output ends before it)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops, self.held, self.hit = stops, "", False

    def take(self, text: str) -> str:
        text = self.held + text
        cut = min((i for s in self.stops if (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.hit, self.held = True, ""
            return text[:cut]
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def rest(self) -> str:
        held, self.held = self.held, ""
        return held


class _InBand:
    """A reasoning model's thinking written in band, ``<think>...</think>`` at the start of its
    output (Qwen3, DeepSeek-R1), split from its answer as the pieces come: `split` gives each
    piece's (thinking, answer). Text that may begin a tag is held back until the next piece
    tells; the newlines after ``</think>`` are the template's, not the answer's."""

    OPEN, CLOSE = "<think>", "</think>"
    __slots__ = ("held", "state")

    def __init__(self) -> None:
        self.state, self.held = "start", ""  # start -> thinking -> after -> answer (or start -> answer)

    def split(self, text: str) -> tuple[str, str]:
        if self.state == "answer":
            return "", text
        if self.state == "after":
            text = text.lstrip("\n")
            if text:
                self.state = "answer"
            return "", text
        text = self.held + text
        self.held = ""
        if self.state == "start":
            began = text.lstrip()
            if len(began) < len(self.OPEN) and self.OPEN.startswith(began):
                self.held = text  # "<th": a tag's start, or an answer's
                return "", ""
            if not began.startswith(self.OPEN):
                self.state = "answer"
                return "", text
            self.state, text = "thinking", began[len(self.OPEN):]
        end = text.find(self.CLOSE)
        if end >= 0:
            self.state = "after"
            return text[:end], self.split(text[end + len(self.CLOSE):])[1]
        keep = max((k for k in range(1, len(self.CLOSE)) if text.endswith(self.CLOSE[:k])), default=0)
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], ""

    def rest(self) -> tuple[str, str]:
        """What is held at the output's end: (thinking, answer)."""
        held, self.held = self.held, ""
        return (held, "") if self.state == "thinking" else ("", held)


class MlxExecutor(Executor):
    """One mlx-lm model in this process. ``lm`` is the ``mlx_lm`` module (None: imported on
    first use); tests pass an object with the same ``load`` and ``stream_generate``."""

    backend = "mlx"
    serves_models = True  # its one model is reported as installed
    features = frozenset({RAW})
    refuses = MappingProxyType({"tools": "mlx-lm has no tool calling",
                                "images": "images are not supported (mlx-lm runs text models; mlx-vlm is not a dependency)",
                                "embeddings": "embeddings are not supported (mlx-lm runs generative models only)",
                                "suffix": "mlx-lm has no fill in the middle (its generate takes one prompt)",
                                "thinking": "mlx-lm's generate has no thinking switch (a model thinks as its "
                                            "weights make it; a <think> block is split from the answer)"})

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

    def installed_models(self) -> Iterable[tuple[str, str]]:
        return [(m.model, m.quant) for m in self.inventory if m.known]

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
        self.refuse_lacking(f"mlx at {self.url}", assignment)
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
            prompt = (call.completion.prompt if call.completion is not None  # raw: as it is
                      else tokenizer.apply_chat_template(call.chat(), add_generation_prompt=True))
            meter = StreamMeter(self.backend, self.url)
            last, finish = await self._stream(model, tokenizer, prompt, call, meter, progress)
        if last is None:
            raise ExecutionError(f"mlx at {self.url}: the generator produced nothing")
        result = meter.result(
            model=self.model_path, prompt_tokens=last.prompt_tokens,
            output_tokens=last.generation_tokens, finish_reason=finish,
            server_decode_tokens_per_s=last.generation_tps,
            server_prefill_tokens_per_s=last.prompt_tps, cost_usd=0.0, account=task.account,
            **call.generation.report(SENT),
        )
        return check_output(call.worker, result)

    async def _stream(self, model: Any, tokenizer: Any, prompt: Any, call: LlmCall,
                      meter: StreamMeter, progress: Progress) -> tuple[Any, str | None]:
        """Run the generator in a thread, feed each response's text to ``meter`` (up to a stop
        sequence); (the last response, the finish reason)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        lm = self._lm
        sampling = call.generation.sampling
        kwargs = generate_kwargs(lm, call.generation)
        stops, inband = _Stops(sampling.get("stop", [])), _InBand()

        def out(thought: str, answer: str) -> None:
            if thought:
                meter.thinking(thought, progress)
            meter.content(stops.take(answer), progress)

        def produce() -> None:
            try:
                if "seed" in sampling:  # mlx's one random state: one generation at a time uses it
                    lm.seed(sampling["seed"])
                for response in lm.stream_generate(model, tokenizer, prompt,
                                                   max_tokens=call.max_output_tokens, **kwargs):
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
                    out(*inband.rest())
                    meter.content(stops.rest(), progress)
                    return last, None if last is None else last.finish_reason
                if kind == "error":
                    raise ExecutionError(f"mlx at {self.url}: generation failed after "
                                         f"{meter.chunks} tokens: {type(item).__name__}: {item}")
                last = item
                out(*inband.split(item.text))
                if stops.hit:
                    return last, "stop"
        finally:
            stop.set()  # on a cancel or a failure too: the thread stops at its next token
