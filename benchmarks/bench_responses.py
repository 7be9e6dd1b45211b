"""Benchmark of a streamed answer through the Responses API (``POST /v1/responses``) and the
Anthropic Messages API (``POST /v1/messages``) against the same answer through chat completions
(the baseline), in one run.

    uv run python benchmarks/bench_responses.py [--rounds 3] [--block 10] [--tokens 100] [--gap-ms 5]

A real cluster (nats-server, the control plane, one agent, `heddle gateway`, each its own
process) in front of a stand-in Ollama server (tests/live/llmstandin.py) whose answers are
``--tokens`` words paced ``--gap-ms`` apart, as a model sends them (an unpaced answer reaches
the caller in a few coalesced pieces). Streamed requests go one at a time, in blocks of
``--block`` per route, the routes alternating block by block (the same conversation,
kept-alive connections, so load from other work on a shared machine hits all alike).
Printed per route: the time to the first piece of text p50/p90, the text events an answer
took, and the gateway's CPU per request and per token (its process's CPU over each block:
nothing else runs through it; the clock's 10 ms ticks are why a block, not a request), with
each route's ratio to chat completions'. CPU moves much less with the machine's load than wall
time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.gatewaykit import bench_cluster
from tests.gateway.gatewaykit import walls as summary
from tests.live.llmstandin import Plan, ollama_stream

KEY = {"key": "sk-bench-resp-01", "owner": "bench", "privacy": "public"}
NODE = "bench-node"
WARM_UP = 5
"""Requests of each route before anything is measured (an agent's first ones cost it more)."""
ASK = [{"role": "user", "content": "Tell me a story about a lantern."}]
ROUTES = {"chat": ("/v1/chat/completions", {"messages": ASK}, '"delta":{"role":"assistant","content"'),
          "responses": ("/v1/responses", {"input": ASK}, 'data: {"type":"response.output_text.delta"'),
          "messages": ("/v1/messages", {"messages": ASK, "max_tokens": 256}, '"delta":{"type":"text_delta"')}
"""Each route's path, its conversation (and Anthropic's required bound) and what its text
events' lines hold (a chat's first piece carries the role; later ones hold ``"delta":{"content"``)."""


def streamed(client: httpx.Client, url: str, body: dict, marker: str) -> tuple[float, float, int]:
    """(seconds to the first piece of text, to the end, text events) of one streamed answer."""
    start, first, pieces = time.perf_counter(), None, 0
    later = marker.replace('"role":"assistant",', "")
    with client.stream("POST", url, json={**body, "stream": True}) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if marker in line or later in line:
                first = first or time.perf_counter()
                pieces += 1
    return (first or time.perf_counter()) - start, time.perf_counter() - start, pieces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="blocks per route")
    parser.add_argument("--block", type=int, default=10, help="requests in a block")
    parser.add_argument("--tokens", type=int, default=100, help="words in each answer")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="between the words")
    args = parser.parse_args()
    words = [f" w{i}" for i in range(args.tokens)]
    samples = args.rounds * args.block
    with bench_cluster(KEY, NODE) as (cluster, standin, processes):
        standin.planner = lambda path, body: Plan(chunks=ollama_stream(body["model"], words=words),
                                                  delays=[args.gap_ms / 1000] * (args.tokens + 1))
        gateway = processes["gateway"]
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.tokens} tokens an answer")
        first: dict[str, list[float]] = {name: [] for name in ROUTES}
        whole: dict[str, list[float]] = {name: [] for name in ROUTES}
        cpu: dict[str, float] = dict.fromkeys(ROUTES, 0.0)
        pieces: dict[str, int] = dict.fromkeys(ROUTES, 0)
        with httpx.Client(timeout=120, headers={"Authorization": "Bearer " + KEY["key"]}) as client:
            for name, (path, conversation, marker) in ROUTES.items():
                for _ in range(WARM_UP):
                    streamed(client, cluster.base_url + path, {"model": "llama-3.1-8b", **conversation}, marker)
            for _ in range(args.rounds):
                for name, (path, conversation, marker) in ROUTES.items():
                    body = {"model": "llama-3.1-8b", **conversation}
                    before = sum(gateway.cpu_times()[:2])
                    for _ in range(args.block):
                        ttft, total, n = streamed(client, cluster.base_url + path, body, marker)
                        assert n >= 1, f"{name}: no text came"
                        first[name].append(ttft)
                        whole[name].append(total)
                        pieces[name] += n
                    cpu[name] += sum(gateway.cpu_times()[:2]) - before
        for name in ROUTES:
            per_request = cpu[name] / samples * 1000
            per_token = cpu[name] / (samples * args.tokens) * 1e6
            base = cpu["chat"] / samples * 1000
            print(f"{name:9s}: first text {summary(first[name])}; whole answer p50 "
                  f"{statistics.median(whole[name]) * 1000:.1f} ms; {pieces[name] / samples:.0f} "
                  f"text events an answer; gateway CPU {per_request:.2f} ms a request, "
                  f"{per_token:.1f} us a token (x{per_request / base:.2f} of chat's)")
        print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
