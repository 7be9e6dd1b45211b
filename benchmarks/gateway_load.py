"""The two ends of `bench_gateway.py`, each run as its own OS process so neither is the
bottleneck it measures: a paced stand-in model server and a lean streaming HTTP client.

    python benchmarks/gateway_load.py standin --ttft-ms 20 --gap-ms 10
        prints ``port <n>`` once listening. Ollama ``/api/chat`` (NDJSON) for the agents and
        OpenAI ``/v1/chat/completions`` (SSE) for the direct path, both kept alive; the first
        token after ``ttft``, then one per ``gap``, scheduled on the event loop's timer heap
        (no thread or sleep per stream). asyncio sets TCP_NODELAY on its sockets: a token is
        not held back by Nagle's algorithm waiting for the client's delayed ACK (40 ms), which
        the old thread-per-connection stand-in did, adding ~23 ms to every first token.
    python benchmarks/gateway_load.py client
        reads one JSON job per line from stdin and answers each with one JSON line: per request
        (seconds to the first token, tokens, errors, the gateway's task id from X-Heddle-Task,
        Unix time sent), the wall span, the process's own CPU seconds and the gaps between
        each answer's chunks as read (ms). From wall time
        ``start_at`` a closed-loop job runs ``loops`` concurrent loops, each one kept-alive
        connection running ``per_loop`` streamed chats back to back (or until ``until`` wall
        time); an open-loop job (``arrivals``: seconds after ``start_at``) sends one chat at
        each arrival, whenever the earlier ones end, on a free connection of a pool of ``pool``
        opened beforehand (one more is opened when none is free, and counted). An open-loop
        chat's time to first token counts from its scheduled arrival, so a client's lateness
        counts against the path (vLLM's ``benchmark_serving`` starts it at the send); each
        request also answers that lateness (seconds from the arrival to the send).

The client speaks HTTP/1.1 itself (request, chunked or sized reply) on asyncio streams: a few
microseconds per read, where httpx costs ~1 ms per request, so several client processes can
drive 100 streams without their own queueing showing up as latency. Both paths use it alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import deque
from urllib.parse import SplitResult, urlsplit

MODEL = "llama3.1:8b-instruct-q4_K_M"
"""What the stand-in serves (the catalog's llama-3.1-8b q4_k_m)."""
TOKEN = b" w"
"""Every token the stand-in sends starts with this (" w0", " w1", ...): the client counts them."""


# --- the stand-in server --------------------------------------------------------------------


class StandIn(asyncio.Protocol):
    ttft_s = 0.02
    gap_s = 0.01

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        length = next((int(line.split(":", 1)[1]) for line in head[1:]
                       if line.lower().startswith("content-length:")), 0)
        if len(self.buf) < head_end + 4 + length:
            return
        body = self.buf[head_end + 4:head_end + 4 + length]
        self.buf = self.buf[head_end + 4 + length:]
        if method == "GET":
            self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}]}
                       if path == "/v1/models" else {"models": [{"name": MODEL, "details": {}}]})
            return self._next_request()
        doc = json.loads(body)
        ollama = path == "/api/chat"
        n = (doc.get("options") or {}).get("num_predict") if ollama else doc.get("max_tokens")
        self.busy = True
        kind = b"application/x-ndjson" if ollama else b"text/event-stream"
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + kind
                             + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(n):  # the last token's callback also ends the stream (equal times in
            # the timer heap do not keep their order)
            loop.call_at(start + self.ttft_s + i * self.gap_s, self._token, ollama, i, n)

    def _token(self, ollama: bool, i: int, n: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the caller went away (a cancelled task): its timers run out quietly
        data = self._chunk(ollama, f" w{i}", False, n)
        if i == n - 1:
            data += self._chunk(ollama, "", True, n) + b"0\r\n\r\n"
        self.transport.write(data)
        if i == n - 1:
            self.busy = False
            self._next_request()

    @staticmethod
    def _chunk(ollama: bool, text: str, done: bool, n: int) -> bytes:
        if ollama:
            doc = {"model": MODEL, "message": {"role": "assistant", "content": text}, "done": done}
            if done:
                doc.update(done_reason="stop", prompt_eval_count=12, eval_count=n)
            data = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        else:
            doc = {"model": MODEL, "choices": [{"index": 0, "delta": {"content": text} if text else {},
                                                "finish_reason": "stop" if done else None}]}
            data = b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"
            if done:
                data += b"data: [DONE]\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _json(self, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


async def serve_standin(ttft_s: float, gap_s: float) -> None:
    StandIn.ttft_s, StandIn.gap_s = ttft_s, gap_s
    server = await asyncio.get_running_loop().create_server(StandIn, "127.0.0.1", 0, backlog=2048)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# --- the client -----------------------------------------------------------------------------

GAPS: list[float] = []
"""ms between the reads of one answer's successive chunks that carry tokens (a job's, reset
at its start): the pace a reader sees the text at; a chat's chunks are its gaps + 1."""


async def read_chunk(reader: asyncio.StreamReader) -> bytes | None:
    """The next chunk of a chunked HTTP/1.1 body (with its closing CRLF), None at its end."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection in the middle of a chunked body")
    size = int(line.split(b";")[0], 16)
    data = await reader.readexactly(size + 2)
    return data if size else None


async def one_chat(reader, writer, head: bytes, body: bytes,
                   since: float | None = None) -> tuple[float | None, int, str | None, str, float]:
    """(seconds to the first token, tokens, error, the gateway's task id or "", Unix time sent)
    of one streamed chat on a kept-alive link; the first token counts from ``since`` (a
    `time.perf_counter` instant) if given, else from the send."""
    sent_at, start = time.time(), time.perf_counter() if since is None else since
    writer.write(head + body)
    status = (await reader.readline()).split(b" ", 2)
    chunked, length, task = False, 0, ""
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"content-length":
            length = int(value)
        elif name == b"x-heddle-task":
            task = value.strip().decode()
    first, count, error, last = None, 0, None, None
    if status[1] != b"200":
        data = await reader.readexactly(length)
        return None, 0, f"HTTP {status[1].decode()}: {data[:200].decode(errors='replace')}", task, sent_at
    while chunked:
        data = await read_chunk(reader)
        if data is None:
            break
        words = data.count(TOKEN)
        if words:
            now = time.perf_counter()
            if first is None:
                first = now - start
            else:
                GAPS.append(round((now - last) * 1000, 2))
            last = now
        count += words
        if error is None and b'"error"' in data:
            error = data[:200].decode(errors="replace")
    return first, count, error, task, sent_at


def _request(job: dict) -> tuple[SplitResult, bytes, bytes]:
    """The job's URL and the one chat request every chat of it sends (head, body)."""
    url = urlsplit(job["url"])
    body = json.dumps({"model": "llama-3.1-8b", "stream": True, "max_tokens": job["tokens"],
                       "messages": [{"role": "user", "content": "Tell me a story."}]}).encode()
    head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in job["headers"].items())
            + "\r\n").encode()
    return url, head, body


async def _timed(job: dict, links: list, work) -> dict:
    """Waits for ``start_at``, runs ``work()``, closes ``links``: the wall span and own CPU."""
    await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
    GAPS.clear()
    began = time.perf_counter()
    cpu0 = _cpu()
    await work()
    wall = time.perf_counter() - began
    cpu = _cpu() - cpu0
    for _, writer in links:
        writer.close()
    return {"wall_s": wall, "cpu_s": cpu, "gaps": GAPS[:]}


async def run_loops(job: dict) -> dict:
    url, head, body = _request(job)
    links = [await asyncio.open_connection(url.hostname, url.port) for _ in range(job["loops"])]
    results: list[tuple[float | None, int, str | None, str, float]] = []

    async def loop(reader, writer) -> None:
        n = 0
        while n < job["per_loop"] and (job.get("until") is None or time.time() < job["until"]):
            results.append(await one_chat(reader, writer, head, body))
            n += 1

    async def work() -> None:
        await asyncio.gather(*(loop(r, w) for r, w in links))

    return {"results": results, **await _timed(job, links, work)}


async def run_open(job: dict) -> dict:
    """An open-loop job: one chat at each of ``arrivals`` (seconds after ``start_at``), on the
    longest-idle free connection of the pool (so each is used again well within the server's
    keep-alive time), or on a new one when none is free."""
    url, head, body = _request(job)
    links = [await asyncio.open_connection(url.hostname, url.port) for _ in range(job["pool"])]
    free = deque(links)
    results: list[tuple[float | None, int, str | None, str, float, float]] = []
    opened = busy = peak = 0
    busy_s = 0.0

    async def chat(scheduled: float) -> None:
        nonlocal opened, busy, peak, busy_s
        busy += 1
        peak = max(peak, busy)
        while free and free[0][0].at_eof():  # the server closed it: not one to send on
            free.popleft()[1].close()
        if free:
            link = free.popleft()
        else:
            link = await asyncio.open_connection(url.hostname, url.port)
            links.append(link)
            opened += 1
        late = time.perf_counter() - scheduled
        results.append((*await one_chat(*link, head, body, since=scheduled), late))
        free.append(link)
        busy -= 1
        busy_s += time.perf_counter() - scheduled

    async def work() -> None:
        start, chats = time.perf_counter(), []
        for offset in job["arrivals"]:
            await asyncio.sleep(start + offset - time.perf_counter())
            chats.append(asyncio.create_task(chat(start + offset)))
        await asyncio.gather(*chats)

    answer = await _timed(job, links, work)
    return {"results": results, "opened": opened, "peak": peak, "busy_s": busy_s, **answer}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    standin = sub.add_parser("standin")
    standin.add_argument("--ttft-ms", type=float, default=20.0)
    standin.add_argument("--gap-ms", type=float, default=10.0)
    sub.add_parser("client")
    args = parser.parse_args()
    if args.role == "standin":
        asyncio.run(serve_standin(args.ttft_ms / 1000, args.gap_ms / 1000))
        return
    print("ready", flush=True)
    for line in sys.stdin:  # one job per line, one JSON answer per line: a process serves a run
        job = json.loads(line)
        print(json.dumps(asyncio.run(run_open(job) if "arrivals" in job else run_loops(job))), flush=True)


if __name__ == "__main__":
    main()
