"""The floor under `bench_gateway.py --floor`: the gateway path's hops with no work in them.

    python benchmarks/gateway_floor.py front --nats URL     (prints ``port <n>`` once listening)
    python benchmarks/gateway_floor.py middle --nats URL
    python benchmarks/gateway_floor.py end --nats URL --standin URL

Three processes stand where the gateway, the control plane and an agent stand, on the same
nats-server, and pass a chat along the same way with nothing done at each step: the front
reads an HTTP request and publishes it; the middle (the control plane's place) publishes it
on; the end (the agent's place) asks the stand-in for it over a kept-alive connection (Ollama
``/api/chat``, as the agents do) and publishes each token as it reads it; the front writes
each token to its caller as a chunk of an SSE stream. No validation, no events, no placement,
no journal: each hop is a NATS subscription's callback and a publish written at once.

Its time to first token against the stand-in's own, measured while the real gateway serves
the same load, is what any implementation of this path in Python on this machine would add
at the least: the wake-ups of ten processes in turn, each waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from typing import ClassVar
from urllib.parse import urlsplit

import nats
from gateway_load import read_chunk  # (this script's own folder is first on sys.path)

from heddle.events.jetstream_acks import publish_now, write_pending

SUBMIT, ASSIGN, TOKEN = "floor.submit", "floor.assign", "floor.token"


class Front(asyncio.Protocol):
    """A caller's kept-alive HTTP/1.1 link: each request published, its tokens written back."""

    waiting: ClassVar[dict[str, Front]] = {}
    nc = None
    ids = itertools.count()

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in self.buf[:head_end].split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        if len(self.buf) < head_end + 4 + length:
            return
        body, self.buf = (
            self.buf[head_end + 4 : head_end + 4 + length],
            self.buf[head_end + 4 + length :],
        )
        key = str(next(self.ids))
        self.waiting[key] = self
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        # on the socket now (a task to publish would leave it for a later turn of the loop)
        if not publish_now(self.nc, f"{SUBMIT}.{key}", body):
            asyncio.get_running_loop().create_task(self.nc.publish(f"{SUBMIT}.{key}", body))

    @classmethod
    async def on_token(cls, msg) -> None:
        key = msg.subject.rpartition(".")[2]
        front = cls.waiting.get(key)
        if front is None or front.transport is None:
            return
        doc = json.loads(msg.data)
        data = (
            b"data: "
            + json.dumps({"choices": [{"delta": {"content": doc["text"]}}]}).encode()
            + b"\n\n"
        )
        out = b"%x\r\n%s\r\n" % (len(data), data)
        if doc["done"]:
            out += b"0\r\n\r\n"
            del cls.waiting[key]
        front.transport.write(out)


async def front(url: str) -> None:
    Front.nc = await nats.connect(url)
    await Front.nc.subscribe(f"{TOKEN}.*", cb=Front.on_token)
    await Front.nc.flush()
    server = await asyncio.get_running_loop().create_server(Front, "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def middle(url: str) -> None:
    nc = await nats.connect(url)

    async def on_submit(msg) -> None:
        await nc.publish(f"{ASSIGN}.{msg.subject.rpartition('.')[2]}", msg.data)
        write_pending(nc)

    await nc.subscribe(f"{SUBMIT}.*", cb=on_submit)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def end(url: str, standin: str) -> None:
    nc = await nats.connect(url)
    target = urlsplit(standin)
    links: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def run(key: str, request: dict) -> None:
        link = links.pop() if links else await asyncio.open_connection(target.hostname, target.port)
        reader, writer = link
        body = json.dumps(
            {
                "model": "llama3.1:8b-instruct-q4_K_M",
                "stream": True,
                "messages": request["messages"],
                "options": {"num_predict": request["max_tokens"]},
            }
        ).encode()
        writer.write(
            f"POST /api/chat HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # the status line and headers: chunked NDJSON, as the stand-in always answers
        while (data := await read_chunk(reader)) is not None:
            doc = json.loads(data)
            await nc.publish(
                f"{TOKEN}.{key}",
                json.dumps({"text": doc["message"]["content"], "done": doc["done"]}).encode(),
            )
            write_pending(nc)
        links.append(link)

    async def on_assign(msg) -> None:
        asyncio.get_running_loop().create_task(
            run(msg.subject.rpartition(".")[2], json.loads(msg.data))
        )

    await nc.subscribe(f"{ASSIGN}.*", cb=on_assign)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("front", "middle", "end"))
    parser.add_argument("--nats", required=True)
    parser.add_argument("--standin")
    args = parser.parse_args()
    if args.role == "front":
        asyncio.run(front(args.nats))
    elif args.role == "middle":
        asyncio.run(middle(args.nats))
    else:
        asyncio.run(end(args.nats, args.standin))


if __name__ == "__main__":
    main()
