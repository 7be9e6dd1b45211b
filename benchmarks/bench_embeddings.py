"""Benchmark of embeddings through the gateway against the same request straight to the model
server, in one run.

    uv run python benchmarks/bench_embeddings.py [--samples 30] [--sizes 1,16,100]

A real cluster (nats-server, the control plane, one agent, `heddle gateway`, each its own
process) in front of a stand-in Ollama server (tests/live/llmstandin.py: 768 numbers per input,
drawn from the input's hash, the same vectors the tests check) serving nomic-embed-text. For
each batch size, requests of that many inputs go one at a time to Ollama's ``/api/embed``,
alternating straight to the stand-in and through the gateway (the same body, kept-alive
connections on both, so load from other work on a shared machine hits both alike), then
through the gateway's ``/v1/embeddings`` as base64. Printed per size: the wall time p50/p90 of
each path, the time the gateway adds (its p50 over the straight p50), the vectors' bytes in
the answer, the chunks they took on the token subject (the request's vectors over what fits in
one), and the CPU milliseconds the gateway, the control plane and the agent spent per request
through the gateway: over the size's whole loop (their work after an answer included; the
straight requests cost them nothing), over its requests on both routes. CPU moves much less
with the machine's load than wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heddle.live import protocol as wire
from tests.gateway.gatewaykit import bench_cluster
from tests.gateway.gatewaykit import walls as summary
from tests.live.llmstandin import EMBEDDING_DIMENSIONS

KEY = {"key": "sk-bench-embed-1", "owner": "bench", "privacy": "public"}
NODE = "bench-node"
WARM_UP = 5
"""Requests of each size through the gateway before anything is measured: an agent's first
requests after its start cost it more CPU (measured: 16-input requests 28-35 ms of the agent's
CPU each as the first size, 5 ms after 100-input ones)."""
EMBEDDING = ("nomic-embed-text:latest", {"parameter_size": "137M", "quantization_level": "F16"})


def cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30, help="requests per path and size")
    parser.add_argument("--sizes", default="1,16,100", help="inputs per request")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with bench_cluster(KEY, NODE, embedding=EMBEDDING) as (cluster, standin, watched):
        headers = {"Authorization": "Bearer " + KEY["key"]}
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {EMBEDDING_DIMENSIONS} numbers a vector")
        with httpx.Client(timeout=120) as direct, httpx.Client(timeout=120, headers=headers) as gw:
            for size in sorted(set(sizes)) * WARM_UP:  # the agent's first seconds cost more
                warm = {"model": EMBEDDING[0], "input": ["warm-up"] * size}
                gw.post(cluster.base_url + "/api/embed", json=warm).raise_for_status()
            for size in sizes:
                texts = [f"passage {i}: the heron waits by the river" for i in range(size)]
                body = {"model": EMBEDDING[0], "input": texts}
                for c, url in ((direct, standin.url), (gw, cluster.base_url)):  # warm both
                    c.post(url + "/api/embed", json=body).raise_for_status()
                walls: dict[str, list[float]] = {"direct": [], "gateway": [], "openai-b64": []}
                answer_bytes = 0
                before = cpu(watched)
                for _ in range(args.samples):
                    t = time.perf_counter()
                    direct.post(standin.url + "/api/embed", json=body).raise_for_status()
                    walls["direct"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    reply = gw.post(cluster.base_url + "/api/embed", json=body)
                    walls["gateway"].append(time.perf_counter() - t)
                    reply.raise_for_status()
                    answer_bytes = len(reply.content)
                    t = time.perf_counter()
                    gw.post(cluster.base_url + "/v1/embeddings", json={
                        "model": EMBEDDING[0], "input": texts, "encoding_format": "base64"}).raise_for_status()
                    walls["openai-b64"].append(time.perf_counter() - t)
                after = cpu(watched)
                spent = {name: after[name] - before[name] for name in watched}
                per_chunk = wire.EMBEDDING_CHUNK_BYTES // (wire.FLOAT_JSON_BYTES * EMBEDDING_DIMENSIONS + 2)
                p50 = {k: statistics.median(v) * 1000 for k, v in walls.items()}
                print(f"{size:4d} inputs: direct {summary(walls['direct'])}; "
                      f"gateway /api/embed {summary(walls['gateway'])} "
                      f"(+{p50['gateway'] - p50['direct']:.1f} ms, x{p50['gateway'] / p50['direct']:.2f}); "
                      f"/v1/embeddings base64 p50 {p50['openai-b64']:.1f} ms; answer {answer_bytes / 1024:.0f} KiB, "
                      f"{-(-size // per_chunk)} chunk(s); CPU ms/request "
                      + ", ".join(f"{n} {s / (2 * args.samples) * 1000:.1f}" for n, s in spent.items()))
        print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
