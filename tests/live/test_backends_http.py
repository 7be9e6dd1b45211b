"""The local backends' HTTP client on real sockets: kept-alive connections are reused (and a
stale one replaced without failing the request), and the body framings servers use (chunked,
sized, up to the close, after a 100 Continue) all read."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from heddle.live.agent.executors import Progress
from heddle.live.backends import OllamaExecutor, OpenAIExecutor
from heddle.live.backends.http import HttpClient, HttpStatusError
from tests.live.llmstandin import WORDS, StandIn
from tests.live.test_backends import assignment


@pytest.fixture
def server():
    s = StandIn()
    yield s
    s.stop()


@pytest.mark.parametrize("make", [OllamaExecutor, OpenAIExecutor])
async def test_requests_share_one_kept_alive_connection(server, make):
    executor = make(server.url)
    try:
        for i in range(3):
            result = await executor.run(assignment(f"t{i}"), Progress())
            assert result["text"] == "".join(WORDS)
    finally:
        await executor.close()
    assert len(server.requests) == 3
    assert len(server.connections) == 1  # discovery and the three chats on one connection


async def test_a_connection_the_server_closed_while_idle_is_replaced(server):
    executor = OllamaExecutor(server.url)
    try:
        await executor.run(assignment("t1"), Progress())
        with server.lock:  # the server drops its idle connections (a restart, an idle timeout)
            for connection in server.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        result = await executor.run(assignment("t2"), Progress())
    finally:
        await executor.close()
    assert result["text"] == "".join(WORDS)
    assert len(server.connections) == 2


async def _raw_server(answer: bytes):
    """A server answering every request with ``answer`` and closing; its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@pytest.mark.parametrize("answer", [
    b"HTTP/1.0 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n",  # ends at the close
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
])
async def test_bodies_delimited_by_the_close_are_read(answer):
    lines = [b'{"message": {"content": "hi"}, "done": false}', b'{"done": true}']
    server, url = await _raw_server(answer + b"\n".join(lines) + b"\n")
    client = HttpClient(url, connect_s=5, read_s=5)
    try:
        async with client.stream("POST", "/api/chat", {"model": "m"}) as response:
            got = [line async for line in response.lines()]
        assert response.status_code == 200 and got == [line.decode() for line in lines]
        assert not client._idle  # a connection the server ends is not kept
    finally:
        await client.aclose()
        server.close()


async def test_a_get_that_fails_says_the_status_and_body():
    server, url = await _raw_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno models")
    client = HttpClient(url, connect_s=5, read_s=5)
    try:
        with pytest.raises(HttpStatusError, match="HTTP 404 from GET /api/tags: no models"):
            await client.get_json("/api/tags")
    finally:
        await client.aclose()
        server.close()
