"""The MLX executor on the real mlx-lm (mlx's CPU build on Linux, the dev group installs it):
a tiny Llama whose random weights the test writes, with a one-character-per-token tokenizer of
its own (no download), loaded in-process and streamed from like any model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heddle.live.agent.executors import Progress
from heddle.live.backends import MlxExecutor
from tests.live.backendkit import assignment

mx = pytest.importorskip("mlx.core", reason="mlx installs on Apple silicon and Linux x86_64 (dev group)")

TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
              "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
CHAT_TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"


def tiny_model(directory: Path) -> Path:
    """config.json, tokenizer files and random model.safetensors, as a converted model has them."""
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{chr(c): i + 3 for i, c in enumerate(range(32, 127))}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one character, one token
    tokenizer.decoder = decoders.Fuse()
    directory.mkdir()
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "chat_template": CHAT_TEMPLATE}))
    config = {**TINY_LLAMA, "vocab_size": len(vocab)}
    (directory / "config.json").write_text(json.dumps(config))
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = {name: mx.random.normal(value.shape, key=mx.random.key(i)) * 0.02
               for i, (name, value) in enumerate(tree_flatten(model.parameters()))}
    mx.save_safetensors(str(directory / "model.safetensors"), weights)
    return directory


async def test_a_tiny_random_model_streams_through_the_real_mlx_lm(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local directory: nothing may be fetched
    path = str(tiny_model(tmp_path / "tiny-llama"))
    mlx = MlxExecutor(path)
    progress = Progress()
    chunks: list[str] = []
    progress.on_text = chunks.append
    result = await mlx.run(assignment(model=None, prompt_tokens=5, output_tokens=6, payload="hello"), progress)
    assert result["model_used"] == path and result["cost_usd"] == 0.0
    assert result["output_tokens"] == 6 and result["finish_reason"] == "length"  # random weights never stop
    # <user>hello<assistant>: one token per character, as the tokenizer counts them
    assert result["prompt_tokens"] == len("<user>hello<assistant>")
    assert result["text"] and "".join(chunks) == result["text"]  # streamed as generated
    assert progress.first_token_at is not None and result["decode_tokens_per_s"] > 0
    assert mlx.inventory[0].loaded  # loaded once, kept for the next task


async def test_a_seed_repeats_a_sampled_output_and_a_stop_sequence_ends_it(tmp_path, monkeypatch):
    """With the real mlx-lm: temperature 1 and a seed give the same text twice; the text up to
    a stop sequence taken from it is what a request with that stop gets."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mlx = MlxExecutor(str(tiny_model(tmp_path / "tiny-llama")))

    async def text(**sampling) -> tuple[str, str]:
        payload = {"prompt": "hello", "max_tokens": 12, "sampling": {"temperature": 1.0, **sampling}}
        result = await mlx.run(assignment(model=None, payload=payload), Progress())
        return result["text"], result["finish_reason"]

    first, _ = await text(seed=5)
    assert (await text(seed=5))[0] == first and len(first) == 12  # one character per token
    assert (await text(seed=6))[0] != first  # near-uniform over ~100 characters: never the same 12
    stop = first[4:6]
    assert await text(seed=5, stop=[stop]) == (first[:first.index(stop)], "stop")
