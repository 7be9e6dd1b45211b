"""A lean HTTP/1.1 client for the local model servers (Ollama, OpenAI-compatible): one
streamed JSON POST or one GET at a time per connection, kept-alive connections reused.

Why not httpx: a token read through httpx passes six async generators, an anyio cancel scope
and h11's state machine; measured against the benchmark's paced stand-in, 450 us of CPU per
token with one stream (95 us with 50), most of what an agent spent on a streamed request.

Every body is read by one decoder of its framing (`_Feed`: chunked, sized, up to the close):
a streamed answer's lines (`HttpResponse.feed_lines`) are handed to a plain function as the
bytes come, a document's bytes (`read`) kept whole. One reader of every body of the event
loop (`_Pump`) runs them, not a task woken per read: no future, task step or async generator
per token. It reads in slices of at most `SLICE_S` and lets the loop run whatever else is
ready between two (a new assignment, the NATS client's reads), and bodies that have not
handed on a line yet (a first token) go first.
The bytes are taken straight from the connection's `asyncio.StreamReader` buffer (`_buffer`,
private to the standard library; measured: agents' CPU at 100 streams -9 to -10%, see
docs/gateway.md); tests/live/test_backends_http.py holds the StreamReader to what this
assumes, so a Python that changes it fails there, not mid-answer.

Failures raise httpx2's exception types (`ConnectError`, `ConnectTimeout`, `ReadTimeout`,
`RemoteProtocolError`) so `heddle.live.backends.common.http_failure` words them the same for
every backend; a non-2xx answer to a GET raises `HttpStatusError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx2

__all__ = ["HttpClient", "HttpResponse", "HttpStatusError", "SentRequest"]

MAX_IDLE = 256
"""Kept-alive connections per server: as many as a node runs requests at once."""
MAX_HEADER_LINES = 100
MAX_LINE = 2**20
"""Longest chunk-size line (or line of a streamed body) kept waiting for its end."""
SLICE_S = 0.0005
"""Longest the pump reads bodies before the event loop runs everything else ready: with 37
streams of 100 tokens/s their tokens come in bursts of ~3 ms of an agent's CPU, which a new
assignment's message waited behind whole at every turn of the loop it needed."""
_EOF = b""


class HttpStatusError(httpx2.HTTPError):
    """A non-2xx answer where a document was expected (the status and the body's start)."""


class _Reader(asyncio.StreamReader):
    """A connection's StreamReader whose bytes go to a `_Feed` while one reads a body."""

    feed: _Feed | None = None

    def feed_data(self, data: bytes) -> None:
        if self.feed is None:
            super().feed_data(data)
            return
        self._buffer.extend(data)  # type: ignore[attr-defined]
        self.feed.wake(data_came=True)

    def feed_eof(self) -> None:
        super().feed_eof()
        if self.feed is not None:
            self.feed.wake()

    def set_exception(self, exc: BaseException) -> None:
        super().set_exception(exc)
        if self.feed is not None:
            self.feed.wake()


class _Pump:
    """Reads every body of an event loop that has bytes waiting, in slices of SLICE_S (one
    callback per slice), those that have handed on no line yet first."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.first: deque[_Feed] = deque()
        self.rest: deque[_Feed] = deque()
        self.due = False

    def add(self, feed: _Feed) -> None:
        (self.rest if feed.lines else self.first).append(feed)
        if not self.due:
            self.due = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        self.due = False
        first, rest = self.first, self.rest
        until = time.perf_counter() + SLICE_S
        while first or rest:
            (first or rest).popleft().run()
            if time.perf_counter() >= until:
                break
        if (first or rest) and not self.due:
            self.due = True
            self.loop.call_soon(self.run)


_PUMPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pump] = weakref.WeakKeyDictionary()


class _Feed:
    """One body, decoded from its framing (chunked, sized, or up to the server's close) as
    its bytes come and handed on piece by piece (`_piece`): the one reader of bodies, for a
    document (`_Document`) and a streamed answer's lines (`_Lines`) alike. The loop's
    `_Pump` runs it; `read_to_end` awaits its end."""

    lines = 0
    """Lines handed on so far: the pump reads bodies that have handed on none first."""
    last = False
    """The server's last message came: the rest is read, not handed on, and a failure is
    none (only `_Lines` learns this)."""

    def __init__(self, response: HttpResponse) -> None:
        self.loop = loop = asyncio.get_running_loop()
        pump = _PUMPS.get(loop)
        if pump is None:
            pump = _PUMPS[loop] = _Pump(loop)
        self.pump, self.response = pump, response
        self.reader: _Reader = response._link.reader  # type: ignore[assignment]
        self.done: asyncio.Future[None] = loop.create_future()
        self.queued = False
        self.need: int | None = None  # bytes of the chunk being read, with its CRLF
        self.trailers = False
        self.left = response._length
        self.read_s = response._read_s
        self.due_at = loop.time() + self.read_s
        self.timer: asyncio.TimerHandle | None = loop.call_at(self.due_at, self._check)

    async def read_to_end(self) -> None:
        """Read the body to its end (or its failure, raised here)."""
        self.reader.feed = self
        self.wake()  # its bytes may have come with the head (or there are none: Content-Length 0)
        try:
            await self.done
        finally:
            self.stop()

    def wake(self, data_came: bool = False) -> None:
        if data_came:
            self.due_at = self.loop.time() + self.read_s
        if not self.queued and not self.done.done():
            self.queued = True
            self.pump.add(self)

    def run(self) -> None:
        self.queued = False
        if self.done.done():
            return
        try:
            ended = self._read()
        except Exception as exc:  # noqa: BLE001 -- the reader's (or on_line's) failure is the caller's
            self._finish(None if self.last else exc)  # after the last message, the result stands
            return
        if ended:
            self.response.complete = True
            self._finish(None)

    def _read(self) -> bool:
        """Hand on the pieces of what has come; True at the body's end."""
        buf: bytearray = self.reader._buffer  # type: ignore[attr-defined]
        if self.response._chunked:
            while True:
                if self.need is not None:
                    if len(buf) < self.need:
                        break
                    piece = bytes(buf[:self.need - 2])
                    del buf[:self.need]
                    self.need = None
                    self._piece(piece)
                    continue
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > MAX_LINE:
                        raise httpx2.RemoteProtocolError("malformed chunked encoding (no end to "
                                                         f"a chunk size line within {MAX_LINE} bytes)")
                    break
                line = bytes(buf[:end + 1])
                del buf[:end + 1]
                if self.trailers:
                    if line in (b"\r\n", b"\n"):
                        return self._ended()
                    continue
                size = _chunk_size(line)
                if size:
                    self.need = size + 2
                else:
                    self.trailers = True
            if self.trailers and self.reader._eof and self.reader.exception() is None:  # type: ignore[attr-defined]
                return self._ended()  # the trailers' blank line never came: the close ends them
        elif self.left is not None:
            take = min(self.left, len(buf))
            if take:
                piece = bytes(buf[:take])
                del buf[:take]
                self.left -= take
                self._piece(piece)
            if not self.left:
                return self._ended()
        else:
            if buf:
                piece = bytes(buf)
                buf.clear()
                self._piece(piece)
            if self.reader._eof and self.reader.exception() is None:  # type: ignore[attr-defined]
                return self._ended()
        error = self.reader.exception()
        if self.reader._eof or error is not None:  # type: ignore[attr-defined]
            raise httpx2.RemoteProtocolError("peer closed connection without sending complete message "
                                             "body" + (f" ({type(error).__name__})" if error else ""))
        return False

    def _piece(self, piece: bytes) -> None:
        """The body's next bytes."""
        raise NotImplementedError

    def _ended(self) -> bool:
        """The body's end came: True."""
        return True

    def _check(self) -> None:
        if self.loop.time() < self.due_at:  # bytes came since it was set: the new deadline
            self.timer = self.loop.call_at(self.due_at, self._check)
            return
        self.timer = None
        self._finish(None if self.last else
                     httpx2.ReadTimeout(f"no byte within {self.read_s:g} s"))

    def _finish(self, exc: BaseException | None) -> None:
        if self.done.done():
            return
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)

    def stop(self) -> None:
        self.reader.feed = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _chunk_size(line: bytes) -> int:
    """A chunk size line's size; RemoteProtocolError, quoting it, if it is not hexadecimal."""
    try:
        size = int(line.split(b";", 1)[0], 16)
    except ValueError:
        size = -1
    if size < 0:
        raise httpx2.RemoteProtocolError(f"malformed chunked encoding (chunk size line {line[:40]!r})")
    return size


class _Document(_Feed):
    """A body's bytes, whole (`HttpResponse.read`)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response)
        self.pieces: list[bytes] = []

    def _piece(self, piece: bytes) -> None:
        self.pieces.append(piece)


class _Lines(_Feed):
    """A body's lines to ``on_line`` as its bytes come (`HttpResponse.feed_lines`)."""

    def __init__(self, response: HttpResponse, on_line: Callable[[str], bool], settle_s: float) -> None:
        super().__init__(response)
        self.on_line, self.settle_s = on_line, settle_s
        self.rest = b""  # a line's start

    def _piece(self, piece: bytes) -> None:
        if self.rest:
            piece, self.rest = self.rest + piece, b""
        *whole, self.rest = piece.split(b"\n")
        if len(self.rest) > MAX_LINE:
            raise httpx2.RemoteProtocolError(f"line too long (no line end within {MAX_LINE} bytes)")
        for line in whole:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self.last:
            return
        self.lines += 1
        if self.on_line(line.rstrip(b"\r").decode(errors="replace")):
            self.last = True
            if not self.done.done():  # the rest of the body, usually in the same packet
                self.loop.call_later(self.settle_s, self._finish, None)

    def _ended(self) -> bool:
        if self.rest:
            line, self.rest = self.rest, b""
            self._line(line)
        return True


class _Link:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class HttpResponse:
    """Status, headers (lower-case names) and the body, read once: `read` or `feed_lines`."""

    def __init__(self, link: _Link, status: int, headers: dict[str, str], keep_alive: bool,
                 read_s: float, head_only: bool = False) -> None:
        self._link, self.status_code, self.headers = link, status, headers
        self._read_s = read_s
        self.complete = head_only  # the body has been read to its end
        self.keep_alive = keep_alive
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._length = None if self._chunked or length is None else int(length)
        if not self._chunked and self._length is None:
            self.keep_alive = False  # the body ends when the server closes the connection

    async def read(self) -> bytes:
        """The whole body (a document, an error's text)."""
        if self.complete:
            return b""
        document = _Document(self)
        await document.read_to_end()
        return b"".join(document.pieces)

    async def feed_lines(self, on_line: Callable[[str], bool], settle_s: float) -> None:
        """Hand the body's lines (without their line ends, UTF-8) to ``on_line`` as they
        come, from the loop's reader of bodies (`_Pump`); returns at the body's end. An
        exception ``on_line`` raises ends the reading and is raised here. ``on_line``
        returns True at the server's last message: the lines after it are read and
        dropped, for at most ``settle_s`` (then the connection is not kept alive), and a
        failure after it is no failure."""
        if not self.complete:
            await _Lines(self, on_line, settle_s).read_to_end()


class HttpClient:
    """Requests to one server (``url``: scheme, host, port and an optional path prefix)."""

    def __init__(self, url: str, *, connect_s: float, read_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.authority = parts.netloc.rpartition("@")[2]
        self.connect_s, self.read_s = connect_s, read_s
        self._idle: list[_Link] = []

    async def _connect(self) -> _Link:
        try:
            async with asyncio.timeout(self.connect_s):
                loop = asyncio.get_running_loop()  # asyncio.open_connection, with a _Reader
                reader = _Reader(limit=2**20, loop=loop)
                protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
                transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port,
                                                            ssl=self.ssl)
                writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"no connection within {self.connect_s:g} s") from None
        except OSError as exc:
            raise httpx2.ConnectError(exc.strerror or str(exc)) from None
        return _Link(reader, writer)

    def _release(self, link: _Link, response: HttpResponse | None) -> None:
        if (response is not None and response.complete and response.keep_alive
                and link.usable() and len(self._idle) < MAX_IDLE):
            self._idle.append(link)
        else:
            link.close()

    def _encode(self, method: str, path: str, json_body: Any) -> bytes:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = (f"{method} {self.prefix}{path} HTTP/1.1\r\nHost: {self.authority}\r\n"
                f"Accept: */*\r\nUser-Agent: heddle\r\n"
                + (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   if json_body is not None else "") + "\r\n").encode()
        return head + body

    def send_now(self, method: str, path: str, json_body: Any = None) -> SentRequest | None:
        """Write the request on a kept-alive connection now, from code that cannot await (an
        agent's assignment callback: the request leaves before the loop turns); `stream`
        with ``sent=`` reads its answer. None, having done nothing, when no kept-alive
        connection is at hand (`stream` then connects as usual)."""
        while self._idle:
            link = self._idle.pop()
            if link.usable():
                data = self._encode(method, path, json_body)
                link.writer.write(data)
                return SentRequest(link, data)
            link.close()
        return None

    @contextlib.asynccontextmanager
    async def stream(self, method: str, path: str, json_body: Any = None,
                     sent: SentRequest | None = None) -> AsyncIterator[HttpResponse]:
        """The response, its body not read yet; the connection goes back to the pool if the
        body was read to its end, else it is closed. ``sent``: the same request, written
        already by `send_now` (its answer is read; sent again on a new connection if the
        kept-alive one turns out closed)."""
        data = sent.take() if sent is not None else None
        if data is None:
            link, response = await self._send(self._encode(method, path, json_body), method == "HEAD")
        else:
            link, response = await self._send(data[1], method == "HEAD", data[0])
        try:
            yield response
        finally:
            self._release(link, response)

    async def _send(self, data: bytes, head_only: bool,
                    written: _Link | None = None) -> tuple[_Link, HttpResponse]:
        """The request on a kept-alive connection, else on a new one (``written``: a
        kept-alive one it was written on already)."""
        while True:
            fresh = not self._idle and written is None
            if written is not None:
                link, write, written = written, False, None
            else:
                link, write = (await self._connect() if fresh else self._idle.pop()), True
            try:
                return link, await self._exchange(link, data, head_only, write)
            except _ClosedIdleError:
                link.close()
                if fresh:
                    raise httpx2.RemoteProtocolError("server disconnected without sending "
                                                     "a response") from None
                # a kept-alive one the server closed while idle: it never read this request
            except BaseException:
                link.close()
                raise

    async def _exchange(self, link: _Link, data: bytes, head_only: bool, write: bool = True) -> HttpResponse:
        reader = link.reader
        if write and not link.usable():
            raise _ClosedIdleError
        try:
            if write:
                link.writer.write(data)
            async with asyncio.timeout(self.read_s):
                while True:  # 1xx answers (100 Continue) come before the real one
                    line = await reader.readline()
                    if not line:
                        raise _ClosedIdleError
                    version, status = _status(line)
                    headers: dict[str, str] = {}
                    for _ in range(MAX_HEADER_LINES):
                        field = await reader.readline()
                        if field in (b"\r\n", b"\n"):
                            break
                        if not field:
                            raise asyncio.IncompleteReadError(_EOF, None)
                        name, _, value = field.decode("latin-1").partition(":")
                        name, value = name.strip().lower(), value.strip()
                        headers[name] = f"{headers[name]}, {value}" if name in headers else value
                    else:
                        raise httpx2.RemoteProtocolError("too many header lines")
                    if status >= 200:
                        break
        except TimeoutError:
            raise httpx2.ReadTimeout(f"no answer within {self.read_s:g} s") from None
        except (ConnectionResetError, BrokenPipeError):
            raise _ClosedIdleError from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise httpx2.RemoteProtocolError(f"connection lost before the answer "
                                             f"({type(exc).__name__})") from None
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        no_body = head_only or status in (204, 304)
        return HttpResponse(link, status, headers, keep_alive, self.read_s, head_only=no_body)

    async def get_json(self, path: str) -> Any:
        """A GET's JSON document (HttpStatusError unless 2xx; ValueError if not JSON)."""
        async with self.stream("GET", path) as response:
            data = await response.read()
        if not 200 <= response.status_code < 300:
            raise HttpStatusError(f"HTTP {response.status_code} from GET {path}: "
                                  f"{data[:200].decode(errors='replace')}")
        return json.loads(data)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


class SentRequest:
    """A request `HttpClient.send_now` wrote: `HttpClient.stream` reads its answer, or
    `close` drops it (its connection closed: the answer is not read)."""

    __slots__ = ("_data", "_link")

    def __init__(self, link: _Link, data: bytes) -> None:
        self._link: _Link | None = link
        self._data = data

    def take(self) -> tuple[_Link, bytes] | None:
        """The connection and the request's bytes, once."""
        if self._link is None:
            return None
        link, self._link = self._link, None
        return link, self._data

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


class _ClosedIdleError(Exception):
    """The connection ended before any answer: a kept-alive one the server had closed."""


def _status(line: bytes) -> tuple[str, int]:
    """``HTTP/1.1 200 OK`` -> (version, status); RemoteProtocolError if not a status line."""
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise httpx2.RemoteProtocolError(f"not an HTTP status line: {line[:80]!r}")
    return parts[0], int(parts[1])
