"""The local backends' HTTP client on real sockets: kept-alive connections are reused (and a
stale one replaced without failing the request), and the body framings servers use (chunked,
sized, up to the close, after a 100 Continue) all read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import httpx2
import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import OllamaExecutor, OpenAIExecutor
from heddle.live.backends.http import MAX_LINE, HttpClient, HttpStatusError
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


def _wait_for(condition, timeout_s: float = 5.0) -> None:
    """Wait, without a turn of the event loop, for the threaded stand-in to get there."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


async def test_a_request_begun_in_the_assignment_callback_leaves_before_the_loop_turns(server):
    """`begin` (the agent calls it in the assignment's callback) writes the request at once on
    a kept-alive connection; `run` then reads its answer, the stream's TTFT counted from
    the request's departure."""
    executor = OllamaExecutor(server.url)
    try:
        await executor.run(assignment("t1"), Progress())  # discovery, and a kept-alive connection
        progress = Progress()
        executor.begin(assignment("t2", payload="hello"), progress)
        _wait_for(lambda: len(server.requests) == 2)  # the loop has not turned since
        result = await executor.run(assignment("t2", payload="hello"), progress)
    finally:
        await executor.close()
    assert result["text"] == "".join(WORDS) and progress.begun is None
    assert len(server.connections) == 1
    assert server.requests[1][2]["messages"] == [{"role": "user", "content": "hello"}]


async def test_a_begun_request_whose_connection_the_server_closed_is_sent_again(server):
    executor = OllamaExecutor(server.url)
    try:
        await executor.run(assignment("t1"), Progress())
        with server.lock:  # the server drops its idle connection as the request goes out
            for connection in server.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        progress = Progress()
        executor.begin(assignment("t2"), progress)
        result = await executor.run(assignment("t2"), progress)
    finally:
        await executor.close()
    assert result["text"] == "".join(WORDS)
    assert len(server.connections) == 2


async def test_a_begun_request_dropped_before_its_run_frees_its_connection(server):
    """An attempt cancelled in the callback that began it (the agent closes what `begin`
    started): its connection is closed, not left half read, and the next request works."""
    executor = OllamaExecutor(server.url)
    try:
        await executor.run(assignment("t1"), Progress())
        progress = Progress()
        executor.begin(assignment("t2"), progress)
        assert progress.begun is not None
        progress.begun.close()
        result = await executor.run(assignment("t3"), Progress())
    finally:
        await executor.close()
    assert result["text"] == "".join(WORDS)
    assert len(server.connections) == 2  # the dropped one was not reused


async def test_nothing_is_begun_without_a_kept_alive_connection_or_a_known_model(server):
    executor = OllamaExecutor(server.url)
    try:
        progress = Progress()
        executor.begin(assignment("t1"), progress)  # the server was never asked what it has
        assert progress.begun is None and not server.requests
        result = await executor.run(assignment("t1"), progress)
    finally:
        await executor.close()
    assert result["text"] == "".join(WORDS)


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
        got: list[str] = []
        async with client.stream("POST", "/api/chat", {"model": "m"}) as response:
            await response.feed_lines(lambda line: got.append(line) or False, settle_s=1)
        assert response.status_code == 200 and got == [line.decode() for line in lines]
        assert not client._idle  # a connection the server ends is not kept
    finally:
        await client.aclose()
        server.close()


def _ollama_lines(words: list[str]) -> list[bytes]:
    return [json.dumps({"model": "m", "message": {"content": w}, "done": False}).encode()
            for w in words] + [json.dumps({"model": "m", "done": True, "eval_count": len(words)}).encode()]


async def _trickling_server(head: bytes, body: bytes, step: int = 3, hold: bool = False):
    """A server answering with ``head`` then ``body`` ``step`` bytes per write (so lines and
    chunk sizes arrive cut anywhere), then closing (``hold``: once the client has); its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(next((int(line.split(b":")[1]) for line in request.split(b"\r\n")
                                       if line.lower().startswith(b"content-length:")), 0))
        writer.write(head)
        for at in range(0, len(body), step):
            writer.write(body[at:at + step])
            await writer.drain()
            await asyncio.sleep(0)
        if hold:
            await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _chunked(lines: list[bytes]) -> bytes:
    """Two lines per chunk, one of them cut across the next chunk, and a trailer."""
    data = b"".join(line + b"\n" for line in lines)
    pieces = [data[at:at + 50] for at in range(0, len(data), 50)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Trailer: 1\r\n\r\n"


@pytest.mark.parametrize("framing", ["chunked", "sized", "up to the close"])
async def test_a_streamed_answer_cut_anywhere_reads_whole(framing):
    """However the server's bytes are cut (lines, chunk sizes and the terminator across
    writes), the streamed answer reads as the server sent it."""
    words = [f" w{i}" for i in range(30)] + [" \u00e9t\u00e9"]
    lines = _ollama_lines(words)
    plain = b"".join(line + b"\n" for line in lines)
    head, body = {
        "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", _chunked(lines)),
        "sized": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(plain), plain),
        "up to the close": (b"HTTP/1.0 200 OK\r\n\r\n", plain),
    }[framing]
    server, url = await _trickling_server(head, body)
    executor = OllamaExecutor(url)
    try:
        result = await executor.run(assignment("t1", options={"model": "m"}), Progress())
    finally:
        await executor.close()
        server.close()
    assert result["text"] == "".join(words) and result["output_tokens"] == len(words)


async def test_a_streamed_answer_cut_mid_body_fails_with_the_reason():
    lines = _ollama_lines([" a", " b"])[:-1]  # no done line, then the server goes away
    server, url = await _trickling_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                          _chunked(lines)[:-25])  # inside the last chunk
    executor = OllamaExecutor(url)
    try:
        with pytest.raises(ExecutionError, match="connection lost mid-stream after 1 chunks"):
            await executor.run(assignment("t1", options={"model": "m"}), Progress())
    finally:
        await executor.close()
        server.close()


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def _sized(length: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length


async def _body(url: str, how: str, read_s: float = 5) -> bytes:
    """The body of a GET to ``url``, read whole (`read`) or as lines (`feed_lines`, joined)."""
    client = HttpClient(url, connect_s=5, read_s=read_s)
    try:
        async with client.stream("GET", "/doc") as response:
            if how == "read":
                return await response.read()
            lines: list[str] = []
            await response.feed_lines(lambda line: lines.append(line) or False, settle_s=1)
            return "".join(line + "\n" for line in lines).encode()
    finally:
        await client.aclose()


@pytest.mark.parametrize("how", ["read", "feed_lines"])
@pytest.mark.parametrize("framing", ["chunked", "chunked, the close ends the trailers", "sized",
                                     "up to the close"])
async def test_a_body_cut_anywhere_reads_whole(framing, how):
    """A document (`read`: discovery's GETs, error bodies) and a streamed answer's lines read
    the same bytes however the server frames and cuts them."""
    lines = _ollama_lines([f" w{i}" for i in range(30)] + [" \u00e9t\u00e9"])
    plain = b"".join(line + b"\n" for line in lines)
    head, body = {
        "chunked": (CHUNKED, _chunked(lines)),
        "chunked, the close ends the trailers": (CHUNKED, _chunked(lines)[:-2]),
        "sized": (_sized(len(plain)), plain),
        "up to the close": (b"HTTP/1.0 200 OK\r\n\r\n", plain),
    }[framing]
    server, url = await _trickling_server(head, body)
    try:
        assert await _body(url, how) == plain
    finally:
        server.close()


@pytest.mark.parametrize("how", ["read", "feed_lines"])
@pytest.mark.parametrize(("head", "body"), [(_sized(0), b""), (CHUNKED, b"0\r\n\r\n")],
                         ids=["Content-Length 0", "chunked"])
async def test_an_empty_body_on_a_kept_alive_connection_reads_at_once(head, body, how):
    """No byte of the body comes after the head (a 5xx without text, say): its end is known
    without waiting for one, nor for the server's close, nor for the read timeout."""
    server, url = await _trickling_server(head, body, hold=True)
    try:
        assert await asyncio.wait_for(_body(url, how, read_s=60), 30) == b""
    finally:
        server.close()


LONG = b"1" * (MAX_LINE + 10)
"""A line longer than the reader keeps waiting for its end."""


@pytest.mark.parametrize("how", ["read", "feed_lines"])
@pytest.mark.parametrize(("head", "body", "hold", "error", "match"), [
    (CHUNKED, b"zz\r\nab\r\n0\r\n\r\n", False, httpx2.RemoteProtocolError,
     r"malformed chunked encoding \(chunk size line b'zz"),
    (CHUNKED, b"-2\r\nab\r\n0\r\n\r\n", False, httpx2.RemoteProtocolError,
     r"malformed chunked encoding \(chunk size line b'-2"),
    (CHUNKED, LONG, False, httpx2.RemoteProtocolError,
     "malformed chunked encoding .no end to a chunk size line"),
    (CHUNKED, b"10\r\nabc", False, httpx2.RemoteProtocolError,
     "peer closed connection without sending complete message body"),
    (CHUNKED, b"3\r\nabc\r\n", False, httpx2.RemoteProtocolError,
     "peer closed connection without sending complete message body"),
    (_sized(10), b"abc", False, httpx2.RemoteProtocolError,
     "peer closed connection without sending complete message body"),
    (CHUNKED, b"3\r\nab", True, httpx2.ReadTimeout, "no byte within 0.3 s"),
    (_sized(10), b"abc", True, httpx2.ReadTimeout, "no byte within 0.3 s"),
    (b"HTTP/1.0 200 OK\r\n\r\n", b"abc", True, httpx2.ReadTimeout, "no byte within 0.3 s"),
], ids=["chunk size not hexadecimal", "chunk size negative", "chunk size line too long",
        "cut inside a chunk", "cut between two chunks", "cut short of its length", "chunked, then silence", "sized, then silence",
        "up to the close, then silence"])
async def test_a_bad_body_fails_with_what_was_wrong(head, body, hold, error, match, how):
    server, url = await _trickling_server(head, body, step=65536, hold=hold)
    try:
        with pytest.raises(error, match=match):
            await _body(url, how, read_s=0.3)
    finally:
        server.close()


async def test_a_streamed_line_too_long_fails_with_what_was_wrong():
    """Its end (the last byte of the body) never comes: the reader gives up at MAX_LINE."""
    server, url = await _trickling_server(_sized(len(LONG) + 1), LONG, step=65536, hold=True)
    try:
        with pytest.raises(httpx2.RemoteProtocolError, match="line too long"):
            await _body(url, "feed_lines")
    finally:
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


async def test_the_stream_reader_keeps_its_bytes_where_the_body_reader_takes_them():
    """The body reader (`_Reader.feed_data`, `_Feed._read`) adds to and takes from
    asyncio.StreamReader's private `_buffer` and leaves the rest to the reader's own reads:
    a Python whose StreamReader keeps its bytes elsewhere fails here, not mid-answer."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"2\r\nab")
    assert isinstance(reader._buffer, bytearray)
    assert bytes(reader._buffer) == b"2\r\nab"
    del reader._buffer[:3]  # a chunk-size line taken by the body reader
    assert await reader.readexactly(2) == b"ab"
    reader._buffer.extend(b"cd\n")  # bytes added while a body is read, no waiter woken
    assert await asyncio.wait_for(reader.readline(), 5) == b"cd\n"
