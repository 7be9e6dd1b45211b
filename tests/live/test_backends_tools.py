"""Tool calling in every LLM backend, over real HTTP to stand-in servers that stream a call as
each real server does (Ollama whole, OpenAI-compatible in argument pieces, Claude as a
``tool_use`` block): the result carries the call (id, name, arguments), the request carries the
tools in the server's shape, and a conversation with the call and the tool's result reaches the
server in its own shape. MLX refuses tools with the reason. The closing token chunk carries the
calls (protocol 1.9) and a chunk without them is what a 1.8 agent sent."""

from __future__ import annotations

import json

import pytest

from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.agent.tokens import TextChunks, TokenSink
from tests.live.backendkit import assignment, close, harness
from tests.live.llmstandin import TOOL_ARGUMENTS, WORDS

pytestmark = pytest.mark.filterwarnings("error:The model 'claude-:DeprecationWarning")
TOOLS = [{"name": "get_weather", "description": "The forecast.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
         {"name": "get_time", "description": "", "parameters": {"type": "object", "properties": {}}}]
ASK = {"role": "user", "content": "Weather in Lisbon?"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
SERVER_TOOLS = {  # how each server is sent the first of TOOLS
    "ollama": {"type": "function", "function": TOOLS[0]},
    "openai": {"type": "function", "function": TOOLS[0]},
    "claude": {"name": "get_weather", "description": "The forecast.", "input_schema": SCHEMA},
}
ANSWERED = {  # the call and its result, as each server is sent them
    "ollama": [{"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]},
               {"role": "tool", "content": "sunny", "tool_name": "get_weather"}],
    "openai": [{"role": "assistant", "content": None, "tool_calls": [
                   {"id": "c1", "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps(TOOL_ARGUMENTS)}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
    "claude": [{"role": "assistant", "content": [
                   {"type": "tool_use", "id": "c1", "name": "get_weather", "input": TOOL_ARGUMENTS}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]}],
}


@pytest.fixture(params=["ollama", "openai", "claude"])
async def h(request):
    made = harness(request.param)
    yield made
    await close(made)


async def test_a_tool_call_comes_back_in_the_result_and_the_answer_goes_to_the_server(h):
    payload = {"messages": [ASK], "tools": TOOLS, "tool_choice": "auto"}
    result = await h.executor.run(assignment(payload=payload, **h.task), Progress())
    (call,) = result["tool_calls"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == TOOL_ARGUMENTS and call["id"]
    body = h.server.requests[-1][2]
    assert body["tools"][0] == SERVER_TOOLS[h.name] and len(body["tools"]) == 2
    assert body.get("tool_choice") == {"ollama": None, "openai": "auto", "claude": {"type": "auto"}}[h.name]

    history = [ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "name": "get_weather", "arguments": json.dumps(TOOL_ARGUMENTS)}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "get_weather"}]
    answer = await h.executor.run(assignment(task_id="t2", payload={"messages": history, "tools": TOOLS},
                                             **h.task), Progress())
    assert answer["text"] == "".join(WORDS) and "tool_calls" not in answer
    assert h.server.requests[-1][2]["messages"][-2:] == ANSWERED[h.name]


@pytest.mark.parametrize(("choice", "parallel"), [("none", None), ({"name": "get_weather"}, False),
                                                   ("required", None)])
async def test_the_tool_choice_in_each_servers_terms(h, choice, parallel):
    payload = {"messages": [ASK], "tools": TOOLS, "tool_choice": choice,
               **({} if parallel is None else {"parallel_tool_calls": parallel})}
    await h.executor.run(assignment(payload=payload, **h.task), Progress())
    body = h.server.requests[-1][2]
    names = [t.get("name") or t["function"]["name"] for t in body.get("tools", [])]
    expected = {
        "ollama": {"none": ([], None), "required": (["get_weather", "get_time"], None),
                   "get_weather": (["get_weather"], None)},
        "openai": {"none": (["get_weather", "get_time"], "none"),
                   "required": (["get_weather", "get_time"], "required"),
                   "get_weather": (["get_weather", "get_time"],
                                   {"type": "function", "function": {"name": "get_weather"}})},
        "claude": {"none": (["get_weather", "get_time"], {"type": "none"}),
                   "required": (["get_weather", "get_time"], {"type": "any"}),
                   "get_weather": (["get_weather", "get_time"],
                                   {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})},
    }[h.name][choice if isinstance(choice, str) else choice["name"]]
    assert (names, body.get("tool_choice")) == expected
    if h.name == "openai":
        assert body.get("parallel_tool_calls") == parallel


async def test_mlx_refuses_tools_with_the_reason():
    h = harness("mlx")
    try:
        with pytest.raises(ExecutionError, match="mlx at in-process:.*no tool calling"):
            await h.executor.run(assignment(payload={"messages": [ASK], "tools": TOOLS}, **h.task), Progress())
        assert h.lm.calls == []
    finally:
        await close(h)


def test_the_closing_chunk_carries_the_calls_and_other_chunks_are_as_before():
    fixed = {"sender": "agent-a", "node_id": "a", "task_id": "t1", "attempt": 0}
    chunks = TextChunks(**fixed)
    plain = json.loads(chunks.encode_model(3, 1.5, 2, done=True, outcome="ok", usage={}))
    assert "tool_calls" not in plain and "tool_calls" not in json.loads(chunks.encode(1, 1.0, 0, "hi"))
    call = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Lisbon"}'}
    data = chunks.encode_model(3, 1.5, 2, done=True, outcome="ok", usage={}, tool_calls=[call])
    assert p.decode_one(data, p.TokenChunk).tool_calls == (p.ToolCall(**call),)
    with pytest.raises(p.ProtocolError, match="tool_calls.0.name"):
        p.decode(data.replace(b'"name":"get_weather"', b'"name":""'), p.TokenChunk)


class _Out:
    """What a TokenSink hands its chunks to (the node's TokenPublisher), kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, subject: str, data: bytes) -> None:
        self.sent.append(data)

    def mark(self, sink: TokenSink, at_once: bool) -> None:
        sink.flush()


def test_calls_a_chunk_cannot_carry_leave_the_end_to_the_tasks_event():
    """Arguments over MAX_MESSAGE_BYTES: no closing chunk (the gateway ends the answer from
    TaskCompleted, whose result has the calls, or from the failure), and no exception on the
    agent's way to its report."""
    out, seq = _Out(), iter(range(100))
    sink = TokenSink(out, "agent-a", "a", assignment(), lambda: next(seq))
    sink("hello")
    call = {"id": "call_1", "name": "write_file", "arguments": json.dumps({"text": "x" * p.MAX_MESSAGE_BYTES})}
    sink.end("ok", None, {"text": "hello", "tool_calls": [call]})
    assert [p.decode_one(d, p.TokenChunk).text for d in out.sent] == ["hello"]
    small = {**call, "arguments": '{"text": "x"}'}
    sink.end("ok", None, {"text": "hello", "tool_calls": [small]})
    assert p.decode_one(out.sent[-1], p.TokenChunk).tool_calls == (p.ToolCall(**small),)
