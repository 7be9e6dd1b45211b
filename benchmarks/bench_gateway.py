"""Benchmark of the gateway against straight calls to the same stand-in model server, in one run.

    uv run python benchmarks/bench_gateway.py [--requests N] [--streams K] [--tokens T]

A real cluster (nats-server, control plane, two agents, `heddle gateway`, each its own
process) in front of one paced stand-in server (Ollama and OpenAI protocols on loopback:
first token after ``--ttft-ms``, then one token per ``--gap-ms``). The client is the same for
both paths: OpenAI streaming (SSE) over httpx.

1. Time to first token at half of saturation (concurrent streams = half the fleet's slots):
   p50/p99 through the gateway vs straight to the stand-in, and the difference (the TTFT the
   gateway adds: HTTP in, submit + placement through the control plane, assignment to the
   agent, its HTTP call, the token back over NATS). Goal <= 5 ms at p50, <= 20 ms at p99.
   Then one stream at a time: the same path without queueing in any of the processes.
2. Token throughput with ``--streams`` concurrent streams (100): tokens/s received through
   the gateway as a share of straight to the stand-in. Goal >= 90%.
The machine's load average is printed next to the figures: on a shared machine they move.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.gatewaykit import MODEL, GatewayCluster, write_keys
from tests.live.clusterkit import REPO, agent_command

KEY = "sk-bench-00001"
SLOTS_PER_AGENT = 50
"""Two agents: 100 slots, so 100 concurrent streams fit and half saturation is 50 streams."""


class PacedStandIn:
    """A model server that streams ``n`` tokens: the first after ``ttft_s``, then one per
    ``gap_s`` (Ollama NDJSON on /api/chat, OpenAI SSE on /v1/chat/completions)."""

    def __init__(self, ttft_s: float, gap_s: float) -> None:
        paced = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, doc):
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                listing = [{"name": MODEL, "details": {}}]
                if self.path == "/v1/models":
                    self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                else:  # /api/tags, /api/ps
                    self._json({"models": listing})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ollama = self.path == "/api/chat"
                n = (body.get("options") or {}).get("num_predict") if ollama else body.get("max_tokens")
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                start = time.perf_counter()
                for i in range(n):
                    due = start + paced.ttft_s + i * paced.gap_s
                    time.sleep(max(0.0, due - time.perf_counter()))
                    self._chunk(ollama, f" w{i}", False, n)
                self._chunk(ollama, "", True, n)
                if not ollama:
                    self._send(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _chunk(self, ollama, text, done, n):
                if ollama:
                    doc = {"model": MODEL, "message": {"role": "assistant", "content": text}, "done": done}
                    if done:
                        doc.update(done_reason="stop", prompt_eval_count=12, eval_count=n)
                    self._send(json.dumps(doc).encode() + b"\n")
                else:
                    doc = {"model": MODEL, "choices": [{"index": 0, "delta": {"content": text} if text else {},
                                                        "finish_reason": "stop" if done else None}]}
                    self._send(b"data: " + json.dumps(doc).encode() + b"\n\n")

            def _send(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # 100 streams connect at once (the default backlog is 5)

            def handle_error(self, request, client_address):
                pass  # a client closing its kept-alive connection is not news

        self.ttft_s, self.gap_s = ttft_s, gap_s
        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


ERRORS: list[str] = []
"""Error events seen in streams (printed: a figure with errors in it is not a clean one)."""


async def one_stream(client: httpx.AsyncClient, url: str, headers: dict, tokens: int) -> tuple[float, int]:
    """(seconds to the first content token, tokens received) of one streamed chat."""
    body = {"model": "llama-3.1-8b", "stream": True, "max_tokens": tokens,
            "messages": [{"role": "user", "content": "Tell me a story."}]}
    start = time.perf_counter()
    first, count = None, 0
    async with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith('data: {"error"'):
                ERRORS.append(line[6:200])
            if line.startswith("data: {") and '"content":' in line:
                words = line.count(" w")  # the stand-in's tokens are " w0", " w1", ...
                count += words  # (pieces read together arrive in one event through the gateway)
                if words and first is None:
                    first = time.perf_counter() - start
    if first is None:
        raise RuntimeError(f"no token from {url}")
    return first, count


async def loops(url: str, headers: dict, concurrency: int, per_loop: int, tokens: int):
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def loop():
            return [await one_stream(client, url, headers, tokens) for _ in range(per_loop)]

        start = time.perf_counter()
        results = await asyncio.gather(*(loop() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    flat = [r for rs in results for r in rs]
    return [t for t, _ in flat], sum(n for _, n in flat), wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200, help="TTFT samples per path")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream (throughput)")
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args()
    paced = PacedStandIn(args.ttft_ms / 1000, args.gap_ms / 1000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    cluster = GatewayCluster(tmp)
    try:
        # capacity every 2 s, lost after 3 silent reports (the defaults): the tests' 0.2 s
        # would call a busy agent lost on a loaded machine
        cluster.start_control("--report-interval", "2")
        for node in ("gw-a", "gw-b"):
            cluster.standins[node] = paced  # type: ignore[assignment]
            cluster.agent_specs[node] = ("bench", SLOTS_PER_AGENT, ())
            command = agent_command(cluster.url, node, "bench", SLOTS_PER_AGENT, ())
            command[command.index("--report-every") + 1] = "2"
            cluster.agents[node] = subprocess.Popen(
                [*command, "--ollama-url", paced.url],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cluster.start_gateway(write_keys(tmp / "keys.yaml", [{"key": KEY, "owner": "bench"}]),
                              "--max-wait", "60", "--log-level", "warning")
        cluster.wait_models({"gw-a", "gw-b"})
        cluster.standins = {}  # the paced server is not a StandIn: nothing to stop per node
        gateway = (cluster.base_url + "/v1/chat/completions", {"Authorization": "Bearer " + KEY})
        direct = (paced.url + "/v1/chat/completions", {})
        asyncio.run(loops(*gateway, 4, 5, 5))  # warm-up: model discovery, connections
        asyncio.run(loops(*direct, 4, 5, 5))

        half = SLOTS_PER_AGENT * 2 // 2  # half of the fleet's slots stream at once
        per_loop = max(1, args.requests // half)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared)")
        print(f"1. TTFT at {half} concurrent streams ({per_loop} each; stand-in TTFT "
              f"{args.ttft_ms:g} ms, one token per {args.gap_ms:g} ms, 20 tokens per stream)")
        d_ttft, _, _ = asyncio.run(loops(*direct, half, per_loop, 20))
        g_ttft, _, _ = asyncio.run(loops(*gateway, half, per_loop, 20))
        for q, goal in ((0.5, 5.0), (0.99, 20.0)):
            d, g = pct(d_ttft, q) * 1000, pct(g_ttft, q) * 1000
            print(f"   p{int(q * 100)}: direct {d:7.2f} ms  gateway {g:7.2f} ms  added {g - d:7.2f} ms"
                  f"  (goal <= {goal:g} ms)  ratio {g / d:.2f}x")
        print(f"   mean: direct {statistics.mean(d_ttft) * 1000:.2f} ms  gateway "
              f"{statistics.mean(g_ttft) * 1000:.2f} ms")

        print("   (one stream at a time, 30 each, for the path's own cost without queueing:)")
        d_one, _, _ = asyncio.run(loops(*direct, 1, 30, 20))
        g_one, _, _ = asyncio.run(loops(*gateway, 1, 30, 20))
        d, g = pct(d_one, 0.5) * 1000, pct(g_one, 0.5) * 1000
        print(f"   p50: direct {d:7.2f} ms  gateway {g:7.2f} ms  added {g - d:7.2f} ms")
        print(f"2. throughput, {args.streams} concurrent streams of {args.tokens} tokens")
        _, d_tokens, d_wall = asyncio.run(loops(*direct, args.streams, 1, args.tokens))
        _, g_tokens, g_wall = asyncio.run(loops(*gateway, args.streams, 1, args.tokens))
        d_rate, g_rate = d_tokens / d_wall, g_tokens / g_wall
        ideal = args.streams * args.tokens / ((args.ttft_ms + args.gap_ms * (args.tokens - 1)) / 1000)
        print(f"   direct  {d_rate:9.0f} tokens/s ({d_tokens} in {d_wall:.2f} s)")
        print(f"   gateway {g_rate:9.0f} tokens/s ({g_tokens} in {g_wall:.2f} s)")
        print(f"   gateway / direct = {g_rate / d_rate:.1%}  (goal >= 90%; the stand-in's pace "
              f"allows {ideal:.0f} tokens/s)")
        print(f"load average after: {os.getloadavg()[0]:.2f}; error events in streams: "
              f"{len(ERRORS)}{' (first: ' + ERRORS[0] + ')' if ERRORS else ''}")
    finally:
        cluster.close()
        paced.server.shutdown()


if __name__ == "__main__":
    main()
