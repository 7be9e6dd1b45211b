"""Installed models: which catalog (model, quant) pairs a node's model servers have.

A live agent reports what its servers offer (their inventories: pulled, downloaded, configured,
whether loaded or not); a fleet file may list them per node (``installed: [model:quant, ...]``).
``None`` is unknown: the node may run any model (an older agent, a backend without an
inventory yet, a fleet file that says nothing). The hard rule (`has_model`): a node whose
installed set is known runs an LLM step only if the set has the step's model in its quant
(a step naming no quant: in any quant). The optimizer's MODEL constraint applies it on every
placement path (heddle.optimizer.fleet_cache.ModelArrays.missing).
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["Installed", "has_model", "missing_text", "pair_name", "parse_installed"]

Installed = frozenset[tuple[str, str]]
"""A set of catalog (model, quant) pairs."""


def has_model(installed: Installed | None, model: str | None, quant: str | None) -> bool:
    """Whether a node with ``installed`` (None: unknown, so yes) has ``model`` in ``quant``
    (None: any quant); a step naming no model asks for none."""
    if installed is None or model is None:
        return True
    return any(m == model and (quant is None or q == quant) for m, q in installed)


def pair_name(model: str, quant: str | None) -> str:
    """``gpt-oss-20b q8_0`` (the quant left out when any will do)."""
    return f"{model} {quant}" if quant else model


def parse_installed(names: Collection[str]) -> Installed:
    """``["llama-3.1-8b:q4_k_m", ...]`` (a fleet file's form) as a set of pairs."""
    return frozenset((m, q) for m, _, q in (name.partition(":") for name in names))


def missing_text(names: Collection[str], model: str, quant: str | None, listed: int = 3) -> str:
    """The reason in words: ``model: carol-a's servers do not have gpt-oss-20b q8_0``, or
    ``model: the servers of carol-a, carol-b do not have ...`` for several nodes."""
    shown = sorted(names)
    what = pair_name(model, quant)
    if not shown:
        return ""
    if len(shown) == 1:
        return f"model: {shown[0]}'s servers do not have {what}"
    more = f" and {len(shown) - listed} more" if len(shown) > listed else ""
    return f"model: the servers of {', '.join(shown[:listed])}{more} do not have {what}"
