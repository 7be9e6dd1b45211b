"""A request's generation options, from either protocol into the task's neutral ``sampling``
and ``format`` (heddle.live.backends.generation, whose rules check them): the one place the
OpenAI and Ollama names meet. A value out of its rule is a 400 naming the field as the
caller sent it (``temperature``, ``options.temperature``) and what was expected.

OpenAI: ``temperature``, ``top_p``, ``seed``, ``stop`` (a string or a list), ``presence_penalty``,
``frequency_penalty``, ``response_format`` (``text``, ``json_object``, ``json_schema``), and the
extras llama.cpp's server takes on the same route (``top_k``, ``min_p``, ``repeat_penalty``);
``n`` other than 1 is refused (one choice is returned). The Responses API's request has the
same options it has fields for (``temperature``, ``top_p``), its JSON output as ``text.format``
(``responses_generation``).
Ollama: ``options.{temperature, top_p, top_k, min_p, seed, stop, repeat_penalty,
presence_penalty, frequency_penalty, num_ctx}`` and ``format`` (``"json"`` or a JSON schema).
Anthropic (Messages API): ``temperature``, ``top_p``, ``top_k``, ``stop_sequences``,
``output_config.format`` (``{"type": "json_schema", "schema": {...}}``) and ``thinking``
(heddle.gateway.thinking).
Chat completions: a reasoning model's thinking switch (``reasoning_effort``,
``reasoning.effort``) and Ollama's ``think``, by heddle.gateway.thinking.
Fields no backend can honour (Ollama's ``template``, echo, best_of, logprobs) are refused the
same way, rather than answered with something else (`unhonoured`). A raw prompt or a suffix
makes the request a completion task (`completion`).
"""

from __future__ import annotations

from typing import Any

from heddle.gateway.errors import GatewayError
from heddle.gateway.tasks import ModelRef
from heddle.gateway.thinking import anthropic_think, ollama_think, openai_think
from heddle.live.backends.completion import check_completion
from heddle.live.backends.generation import (
    FIELDS,
    NONE,
    Generation,
    GenerationError,
    check_format,
    check_sampling,
)
from heddle.models import catalog

__all__ = ["OLLAMA_OPTIONS", "OPENAI_SAMPLING", "UNHONOURED", "anthropic_generation", "check_suffix",
           "completion", "fill_models", "ollama_generation", "openai_generation", "refused",
           "responses_generation", "unhonoured"]

OLLAMA_OPTIONS = tuple(FIELDS)
"""The ``options`` of an Ollama request that are passed on: every neutral field, under its
name (the others are ignored, as before)."""
OPENAI_SAMPLING = tuple(name for name in FIELDS if name != "num_ctx")
"""The body fields of an OpenAI request that are sampling options, under their neutral names
(a context size is no request's field there: the server loads the model with it)."""


def _checked(sampling: dict[str, Any], fmt: dict[str, Any] | None, prefix: str,
             think: bool | str | None = None) -> Generation:
    if not any(v is not None for v in sampling.values()) and fmt is None and think is None:
        return NONE
    try:
        return Generation(check_sampling(sampling), check_format(fmt), think)
    except GenerationError as exc:
        raise exc.under(prefix) from None


UNHONOURED = {"template": ((None, ""), ("no template (the model server applies the model's own; "
                                        "send your template in the prompt with raw: true)")),
              "echo": ((None, False), "echo false (the prompt is not sent back)"),
              "best_of": ((None, 1), "best_of 1 (one completion is made)"),
              "logprobs": ((None, 0), "no logprobs (none are returned)"),
              "top_logprobs": ((None, 0), "no top_logprobs (no logprobs are returned)")}
"""Fields heddle cannot honour: the values that ask nothing of it, and what the 400 for any
other says was expected (a caller that asked for them would silently get something else)."""


def unhonoured(body: Any, names: tuple[str, ...]) -> None:
    """GatewayError 400 naming the first of ``names`` (`UNHONOURED`) that asks for something."""
    for name in names:
        fine, expected = UNHONOURED[name]
        value = getattr(body, name)
        if value not in fine:
            raise refused(GenerationError(name, expected, value))


def completion(prompt: Any, suffix: Any, raw: Any, system: str | None = None) -> dict[str, Any] | None:
    """The task's ``completion`` (heddle.live.backends.completion, whose `check_completion`
    the backends apply to the payload too) when the request asks for a raw prompt or a suffix
    (fill in the middle), else None: a chat. GatewayError 400 naming the field: its rule's, or
    a system prompt beside them (the prompt is all the model gets)."""
    try:
        checked = check_completion(prompt, suffix, raw)
    except GenerationError as exc:
        raise refused(exc) from None
    if checked is None:
        return None
    if system:
        raise refused(GenerationError("system", "no system prompt with raw or a suffix (the prompt "
                                      "is all the model gets)", system))
    return checked.asked()


def check_suffix(ref: ModelRef, completion: dict[str, Any] | None) -> None:
    """A suffix (fill in the middle) asked of a model not trained to fill in the middle (the
    catalog's ``fim``; a cloud offer has none): 400 naming ``suffix`` and the models that do
    (its server would refuse it, or ignore the suffix, only once the task ran)."""
    if completion is None or not completion.get("suffix"):
        return
    if ref.quant is not None and catalog.model(ref.model).fim:
        return
    raise GatewayError(400, f"suffix: {ref.name} does not fill in the middle (no suffix in its "
                       f"template); ask a model that does ({', '.join(fill_models())}), or send the "
                       "model's own fill-in-the-middle prompt raw, without a suffix", "invalid_value",
                       param="suffix")


def fill_models() -> list[str]:
    """The catalog models that fill in the middle."""
    return sorted(m.id for m in catalog.models().values() if m.fim)


def refused(exc: GenerationError) -> GatewayError:
    """A field the gateway does not take: 400 naming it and what was expected."""
    return GatewayError(400, str(exc), "invalid_value", param=exc.field)


def openai_generation(body: Any) -> Generation:
    """An OpenAI chat request's options (``body``: a model with the fields of
    `OPENAI_SAMPLING`, ``n``, ``response_format``, ``reasoning_effort`` and ``reasoning``);
    GatewayError 400 naming the field."""
    try:
        think, _ = openai_think(body.reasoning_effort, body.reasoning)
        return _openai(body, _openai_format(body.response_format), think)
    except GenerationError as exc:
        raise refused(exc) from None


def responses_generation(body: Any) -> Generation:
    """A Responses API request's options (``body``: a model with those of `OPENAI_SAMPLING` it
    has, the others absent, ``text``: its ``text.format`` is the output's format, and
    ``reasoning``: its ``effort`` a reasoning model's thinking switch); GatewayError 400 naming
    the field."""
    try:
        think, _ = openai_think(None, body.reasoning)
        return _openai(body, _responses_format(body.text), think)
    except GenerationError as exc:
        raise refused(exc) from None


def ollama_generation(options: dict[str, Any] | None, fmt: Any, think: Any = None) -> Generation:
    """An Ollama request's ``options`` (those of `OLLAMA_OPTIONS`), ``format`` and ``think``
    (heddle.gateway.thinking); GatewayError 400 naming the field."""
    try:
        return _ollama(options, fmt, ollama_think(think))
    except GenerationError as exc:
        raise refused(exc) from None


def anthropic_generation(body: Any) -> Generation:
    """A Messages API request's options (``body``: a model with ``temperature``, ``top_p``,
    ``top_k``, ``stop_sequences``, ``output_config``, ``thinking`` and its output bound);
    GatewayError 400 naming the field."""
    try:
        return _anthropic(body, anthropic_think(body.thinking, body.output_bound()))
    except GenerationError as exc:
        raise refused(exc) from None


def _anthropic(body: Any, think: bool | str | None) -> Generation:
    stops = body.stop_sequences
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)):
        raise GenerationError("stop_sequences", "a list of non-empty strings", stops)
    sampling = {"temperature": body.temperature, "top_p": body.top_p, "top_k": body.top_k,
                "stop": stops or None}
    config = body.output_config
    if config is not None and not isinstance(config, dict):
        raise GenerationError("output_config", "an object", config)
    fmt = (config or {}).get("format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "json_schema"):
        raise GenerationError("output_config.format", '{"type": "json_schema", "schema": {...}}', fmt)
    return _checked(sampling, fmt and _schema_format(fmt, "output_config.format"), "", think)


def _openai(body: Any, fmt: dict[str, Any] | None, think: bool | str | None = None) -> Generation:
    n = getattr(body, "n", None)
    if n is not None and n != 1:
        raise GenerationError("n", "1 (heddle returns one choice)", n)
    sampling = {name: getattr(body, name, None) for name in OPENAI_SAMPLING}
    stop = sampling["stop"]
    if isinstance(stop, str):
        sampling["stop"] = [stop] if stop else None
    elif isinstance(stop, list) and not all(isinstance(s, str) and s for s in stop):
        # any number: OpenAI's own API takes 4, the servers behind heddle (llama.cpp, vLLM,
        # Ollama) any, and editors' autocomplete sends a model's fill-in-the-middle markers
        raise GenerationError("stop", "a string or a list of non-empty strings", stop)
    elif stop == []:
        sampling["stop"] = None
    return _checked(sampling, fmt, "", think)


def _openai_format(value: Any) -> dict[str, Any] | None:
    return _format(value, "response_format",
                   '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}', nested=True)


def _responses_format(text: Any) -> dict[str, Any] | None:
    """``text.format`` of the Responses API: the chat's ``response_format`` with the schema's
    fields beside its type (``{"type": "json_schema", "name", "schema", "strict"}``)."""
    if text is not None and not isinstance(text, dict):
        raise GenerationError("text", 'an object such as {"format": {"type": "text"}}', text)
    return _format((text or {}).get("format"), "text.format",
                   '{"type": "json_schema", "name": ..., "schema": {...}}', nested=False)


def _format(value: Any, where: str, schema_shape: str, nested: bool) -> dict[str, Any] | None:
    """A requested output format, neutral; ``nested``: a schema's fields in ``json_schema``
    (chat completions) rather than beside its type (the Responses API)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json"}
    if kind != "json_schema":
        raise GenerationError(where, f'{{"type": "text"}}, {{"type": "json_object"}} or {schema_shape}', value)
    if not nested:
        return _schema_format(value, where)
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise GenerationError(f"{where}.json_schema.schema", "a JSON schema object", spec)
    return _schema_format(spec, f"{where}.json_schema")


def _schema_format(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """The neutral format of a ``json_schema`` (its ``schema`` and ``name``, under ``where``)."""
    if not isinstance(spec.get("schema"), dict):
        raise GenerationError(f"{where}.schema", "a JSON schema object", spec.get("schema"))
    name = spec.get("name")
    if name is not None and not (isinstance(name, str) and name):
        raise GenerationError(f"{where}.name", "a non-empty string", name)
    return {"type": "json_schema", "schema": spec["schema"]} | ({"name": name} if name else {})


def _ollama(options: dict[str, Any] | None, fmt: Any, think: bool | str | None) -> Generation:
    sampling = {name: (options or {}).get(name) for name in OLLAMA_OPTIONS}
    if isinstance(sampling["stop"], str):  # Ollama's own takes a list; a lone string is clear
        sampling["stop"] = [sampling["stop"]]
    if fmt in (None, ""):
        neutral = None
    elif fmt == "json":
        neutral = {"type": "json"}
    elif isinstance(fmt, dict):
        neutral = {"type": "json_schema", "schema": fmt}
    else:
        raise GenerationError("format", '"json" or a JSON schema object', fmt)
    return _checked(sampling, neutral, "options.", think)
