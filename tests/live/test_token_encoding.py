"""The agent's fast encoding of text (and thinking) token chunks (`TextChunks`) is the protocol's own: the same
message as `protocol.encode` of the model (the same bytes, but for a tiny time written 1e-07
instead of 1e-7) for any text, sequence number, time and index, and whatever the model
refuses is refused the same way."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from heddle.live import protocol as p
from heddle.live.agent.tokens import TextChunks

FIXED = st.fixed_dictionaries({
    "sender": st.sampled_from(["agent-gw-a", "agent-n.1_x"]),  # the second refused (Ident)
    "node_id": st.sampled_from(["gw-a", "mac-mini_2", "mac-mini.local"]),
    "task_id": st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t),
    "attempt": st.integers(0, 10**6),
})
TEXT = st.one_of(st.text(), st.text(st.characters(codec=None)), st.sampled_from(["", "\u2028", '"\\', "\x7f"]))


def model_bytes(fixed: dict, **varying) -> bytes | Exception:
    try:
        return p.encode(p.TokenChunk(**fixed, **varying))
    except Exception as exc:  # noqa: BLE001 -- the refusal is what is compared
        return exc


def refused_fields(exc: Exception) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in exc.errors()} if isinstance(exc, ValidationError) else set()


TIMES = st.one_of(st.floats(0, 4e9), st.floats(), st.sampled_from([1e-7, 1e16, -0.0, 5e-324]))


@pytest.mark.parametrize("field", ["text", "thinking"])
@given(FIXED, st.integers(-2, 2**63), TIMES,
       st.integers(-2, 2**40), TEXT)
def test_fast_text_chunks_are_the_models_bytes_or_its_refusal(field, fixed, seq, sent_at, index, text):
    expected = model_bytes(fixed, seq=seq, sent_at=sent_at, index=index, **{field: text})
    try:
        chunks = TextChunks(**fixed, field=field)
    except ValidationError as exc:  # a bad node, sender or task: refused when the attempt starts
        assert isinstance(expected, ValidationError) and refused_fields(exc) <= refused_fields(expected)
        return
    try:
        got: bytes | Exception = chunks.encode(seq, sent_at, index, text)
    except Exception as exc:  # noqa: BLE001
        got = exc
    if isinstance(expected, Exception):
        assert type(got) is type(expected) and str(got) == str(expected)
    else:
        assert json.loads(got) == json.loads(expected)  # (1e-07 or 1e-7: the same number)
        assert got == expected or "e-" in repr(sent_at)
        if math.isfinite(sent_at):  # (the model writes an infinite time as null: not ours to fix)
            assert getattr(p.decode_one(got, p.TokenChunk), field) == text


def test_an_oversized_chunk_is_refused_as_the_model_refuses_it():
    with pytest.raises(p.ProtocolError, match="more than the"):
        TextChunks("agent-a", "a", "t-1", 0).encode(1, 1.0, 0, "x" * p.MAX_MESSAGE_BYTES)
