"""Server model names -> catalog (model, quant) ids.

Servers name models their own way: Ollama ``llama3.1:8b-instruct-q4_K_M``, LM Studio
``lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf``,
llama.cpp the file name. A name maps to a catalog model only when the family AND the size
are in it (or the family is, and Ollama's ``details.parameter_size`` is within 10% of the
catalog model's parameter count); the quant only when a known quant label is in it (or in
Ollama's ``details.quantization_level``). Anything else is unknown: a wrong guess would make the optimizer route work to a model that is not there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from heddle.models import catalog

__all__ = ["ServedModel", "catalog_ids"]

_FAMILIES: tuple[tuple[str, str, str], ...] = (
    # (family pattern over the normalized name, size word, catalog model id)
    (r"llama-?3\.2-?vision", "11b", "llama-3.2-vision-11b"),
    (r"gemma-?3", "12b", "gemma-3-12b"),
    (r"gemma-?3", "27b", "gemma-3-27b"),
    (r"qwen-?2\.5-?vl", "7b", "qwen2.5-vl-7b"),
    (r"llama-?3\.1", "8b", "llama-3.1-8b"),
    (r"llama-?3\.1", "70b", "llama-3.1-70b"),
    (r"llama-?2", "7b", "llama-2-7b"),
    (r"mistral", "7b", "mistral-7b"),
    (r"qwen-?2\.5-coder", r"1\.5b", "qwen2.5-coder-1.5b"),
    (r"qwen-?2\.5-coder", "7b", "qwen2.5-coder-7b"),
    (r"qwen-?2\.5", "7b", "qwen2.5-7b"),
    (r"qwen-?2\.5", "32b", "qwen2.5-32b"),
    (r"gpt-oss", "20b", "gpt-oss-20b"),
    (r"gpt-oss", "120b", "gpt-oss-120b"),
)
_MODELS: tuple[tuple[str, str], ...] = (
    *((rf"{family}-(\d+-)*{size}", ident) for family, size, ident in _FAMILIES),
    # Ollama's library names v1.5 ``nomic-embed-text`` (its details: 137M, F16)
    (r"(text-embedding-)?nomic-embed-text(-v1\.5)?", "nomic-embed-text-v1.5"),
)
SIZE_TOLERANCE = 0.1
"""A reported parameter count within 10% of the catalog's names that model (Qwen2.5 7B: 7.6B)."""
_QUANTS: tuple[tuple[str, str], ...] = (
    (r"q4-k-m", "q4_k_m"), (r"q8-0", "q8_0"), (r"q4-0", "q4_0"),
    (r"f16|fp16", "f16"), (r"mxfp4", "mxfp4"),
    # mlx-lm's affine quants (mlx-community/...-4bit): group size 64 with a 16-bit scale and
    # bias is 4.5 / 8.5 bits a weight, the size of q4_0 / q8_0 (32 weights, one 16-bit scale)
    (r"4-?bit", "q4_0"), (r"8-?bit", "q8_0"),
)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model a server offers; ``model``/``quant`` are None when the catalog has no id."""

    name: str
    model: str | None
    quant: str | None
    loaded: bool

    @property
    def known(self) -> bool:
        return self.model is not None and self.quant is not None


def _normalize(name: str) -> str:
    # One separator ('-') between words; ':' '_' '/' ' ' all become it, and a dot before a
    # letter (``nomic-embed-text-v1.5.Q8_0``); dots between digits stay (3.1, 2.5).
    return re.sub(r"[-_:/ ]+|\.(?=[a-z])", "-", name.lower().removesuffix(".gguf"))


def _find(table: tuple[tuple[str, str], ...], text: str) -> str | None:
    for pattern, ident in table:
        if re.search(rf"(^|-)(?:{pattern})(-|$)", text):
            return ident
    return None


def catalog_ids(name: str, parameter_size: str | None = None,
                quantization_level: str | None = None) -> tuple[str | None, str | None]:
    """(catalog model id, quant) of a served model name; None where the catalog has no id.

    ``parameter_size`` ("8.0B") and ``quantization_level`` ("Q4_K_M") are Ollama's details.
    """
    text = _normalize(name)
    model = _find(_MODELS, text)
    if model is None and parameter_size:
        size = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[bB]\s*", parameter_size)
        if size:  # "qwen2.5:latest" + 7.6B -> qwen2.5-7b (the family from the name before ':')
            base, billions = _normalize(name.partition(":")[0]), float(size.group(1))
            model = next((ident for family, _, ident in _FAMILIES
                          if re.fullmatch(family, base)
                          and abs(billions / catalog.model(ident).params_b - 1) <= SIZE_TOLERANCE),
                         None)
    quant = _find(_QUANTS, text)
    if quant is None and quantization_level:
        quant = _find(_QUANTS, _normalize(quantization_level))
    return model, quant
