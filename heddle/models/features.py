"""Features: what a task needs of the software that runs it, beyond a plain chat or step.

A task's ``needs`` (`Task.needs`) name features such as ``tools`` (tool calling), ``embeddings``,
``images`` (image inputs), ``raw`` (a prompt sent as it is, no template) and ``suffix`` (fill
in the middle). A target
offers a set of them: a node what its model servers can run (the live agent's backends
declare theirs: heddle.live.features), an API offer what its API can (`Fleet.offer_features`);
``None`` offers every feature (a fleet file's node that says nothing, an older agent's
protocol version decides for it). The hard rule (`lacking`): a target runs a task only if it
offers every feature the task needs. The names are free words: a new feature is a name a
backend declares and a task builder asks for; `FEATURE_WORDS` says it in words for reasons.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["FEATURE_WORDS", "Features", "lacking", "needs_text"]

Features = frozenset[str]
"""A set of feature names."""

FEATURE_WORDS: dict[str, str] = {
    "tools": "tool calls",
    "embeddings": "embeddings",
    "raw": "raw prompts (no template)",
    "suffix": "fill in the middle (a suffix)",
    "images": "images",
    "thinking": "thinking (a reasoning model's, apart from its answer)",
}
"""Each known feature in words, for the reasons a task is not placed (unknown: its name)."""


def lacking(offered: Features | None, needs: Features) -> Features:
    """The needs a target offering ``offered`` (None: everything) does not run: the rule."""
    if offered is None or not needs:
        return frozenset()
    return needs - offered


def needs_text(lacked: dict[str, Collection[str]], targets: int, model: str | None = None,
               listed: int = 3, runtimes: Mapping[str, str] | None = None) -> str:
    """A reason in words from {feature: names of the targets lacking it} out of ``targets``:
    ``tools: no target runs tool calls for qwen2.5-7b`` when none does, else ``tools: gw-b
    does not run tool calls``; a target with a runtime named in ``runtimes`` (a live node's
    backends) is said with it: ``gw-b on mlx``."""
    runtimes = runtimes or {}
    parts = []
    for need in sorted(lacked):
        names = [f"{n} on {runtimes[n]}" if runtimes.get(n) else n for n in sorted(lacked[need])]
        words = FEATURE_WORDS.get(need, need) + (f" for {model}" if model else "")
        shown = ", ".join(names[:listed]) + (f" and {len(names) - listed} more" if len(names) > listed else "")
        if len(names) >= targets:
            known = [n for n in names[:listed] if " on " in n]
            parts.append(f"{need}: no target runs {words}" + (f" ({', '.join(known)})" if known else ""))
            continue
        parts.append(f"{need}: {shown} {'does' if len(names) == 1 else 'do'} not run {words}")
    return "; ".join(parts)
