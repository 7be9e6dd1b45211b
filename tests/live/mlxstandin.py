"""A stand-in for the ``mlx_lm`` module (mlx-lm 0.32's public API; the real one runs in
test_backends_mlx_real.py, this one scripts what a real model will not do on cue):
``load(path_or_hf_repo, ...) -> (model, tokenizer)``, ``make_sampler``, ``make_logits_processors``
(their arguments recorded), ``seed`` (mx.random.seed) and ``stream_generate(model, tokenizer,
prompt, max_tokens=256, **kwargs)`` yielding `GenerationResponse`s with the real fields, one per
token, computed lazily (as the real generator computes each token when it is asked for).
Scripted per call: the words, an exception after some tokens, a hold before a token."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.live.llmstandin import WORDS


@dataclass
class GenerationResponse:
    """mlx_lm.generate.GenerationResponse (same fields, same order)."""

    text: str
    token: int
    logprobs: Any
    from_draft: bool
    prompt_tokens: int
    prompt_tps: float
    generation_tokens: int
    generation_tps: float
    peak_memory: float
    finish_reason: str | None = None


class TokenizerWrapper:
    """What mlx_lm.load returns as the tokenizer: a chat template that tokenizes by default."""

    def apply_chat_template(self, messages, *, tokenize: bool = True, add_generation_prompt: bool = False,
                            **kwargs: Any):
        text = "".join(f"<|{m['role']}|>{m['content']}" for m in messages)
        text += "<|assistant|>" if add_generation_prompt else ""
        return [ord(c) for c in text] if tokenize else text


@dataclass
class Script:
    words: list[str] = field(default_factory=lambda: list(WORDS))
    fail_after: int | None = None  # raise after this many tokens (a Metal error, out of memory)
    hold: threading.Event | None = None  # wait for it before token ``hold_at``
    hold_at: int = 0


class StandInMlxLm:
    def __init__(self) -> None:
        self.loads: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.scripts: deque[Script] = deque()
        self.tokens_made = 0  # every token any generator computed (a stopped one stops counting)
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.seeded: int | None = None  # the last seed given to mlx's random state

    def make_sampler(self, temp: float = 0.0, top_p: float = 0.0, min_p: float = 0.0,
                     min_tokens_to_keep: int = 1, top_k: int = 0, **xtc: Any) -> tuple:
        """mlx_lm.sample_utils.make_sampler's arguments, as its sampler here."""
        return ("sampler", {"temp": temp, "top_p": top_p, "min_p": min_p, "top_k": top_k})

    def make_logits_processors(self, logit_bias=None, repetition_penalty=None, repetition_context_size=20,
                               presence_penalty=None, presence_context_size=20, frequency_penalty=None,
                               frequency_context_size=20) -> tuple:
        return ("processors", {"repetition_penalty": repetition_penalty, "presence_penalty": presence_penalty,
                               "frequency_penalty": frequency_penalty})

    def seed(self, value: int) -> None:
        """mx.random.seed."""
        self.seeded = value

    def load(self, path_or_hf_repo: str, tokenizer_config=None, model_config=None, adapter_path=None,
             lazy: bool = False, return_config: bool = False, revision=None, trust_remote_code: bool = False):
        if path_or_hf_repo.startswith("/missing"):
            raise FileNotFoundError(f"No such file or directory: {path_or_hf_repo}/config.json")
        self.loads.append(path_or_hf_repo)
        return object(), TokenizerWrapper()

    def stream_generate(self, model, tokenizer, prompt, max_tokens: int = 256, draft_model=None,
                        stream=None, **kwargs: Any):
        if max_tokens == 0:
            raise ValueError("Maximum number of tokens must be non-zero (use -1 for no limit).")
        script = self.scripts.popleft() if self.scripts else Script()
        self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "seed": self.seeded, **kwargs})
        words = script.words[:max_tokens] if max_tokens > 0 else script.words
        start = time.perf_counter()
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            for i, word in enumerate(words):
                if script.hold is not None and i == script.hold_at:
                    script.hold.wait(30)
                if script.fail_after is not None and i == script.fail_after:
                    raise RuntimeError("[metal::malloc] Attempting to allocate more than the maximum")
                self.tokens_made += 1
                last = i == len(words) - 1
                elapsed = max(time.perf_counter() - start, 1e-6)
                yield GenerationResponse(
                    text=word, token=1000 + i, logprobs=None, from_draft=False,
                    prompt_tokens=len(prompt), prompt_tps=len(prompt) / elapsed,
                    generation_tokens=i + 1, generation_tps=(i + 1) / elapsed, peak_memory=0.5,
                    finish_reason=("length" if len(words) == max_tokens else "stop") if last else None,
                )
        finally:
            with self.lock:
                self.running -= 1
