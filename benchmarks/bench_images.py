"""Benchmark of a chat with an image through the gateway against the same request straight to
the model server, in one run.

    uv run python benchmarks/bench_images.py [--samples 10] [--sizes 0,0.1,1,5]

A real cluster (nats-server, the control plane, one agent, `heddle gateway`, each its own
process) in front of a stand-in Ollama server (tests/live/llmstandin.py: it answers a request
with images with each image's SHA-256 and size) serving gemma3:12b. For each image size (MB;
0: a text-only chat, the baseline), ``/api/chat`` requests with one PNG of that size go one at a
time, alternating straight to the stand-in and through the gateway (the same body, kept-alive
connections on both, so load from other work on a shared machine hits both alike). Through
the gateway the image is checked (base64, header, digest), the task carries its reference, and
the agent fetches it from the gateway in pieces (`ImageRequest`) before calling the server.
Printed per size: the wall time p50/p90 of each path, the time the gateway adds (its p50 over
the straight p50) and that over the text-only chat's, and the CPU milliseconds the gateway, the
control plane and the agent spent per request through the gateway (over the size's whole loop).
CPU moves much less with the machine's load than wall time.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.gatewaykit import bench_cluster
from tests.gateway.gatewaykit import walls as summary
from tests.gateway.imagekit import png

KEY = {"key": "sk-bench-image-1", "owner": "bench", "privacy": "public"}
NODE = "bench-node"
VISION = ("gemma3:12b-it-q4_K_M", {"parameter_size": "12.2B", "quantization_level": "Q4_K_M"})
WARM_UP = 3


def cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}


def body(megabytes: float) -> dict:
    message = {"role": "user", "content": "What is in this picture?"}
    if megabytes:
        image = png(64, 48, pad=int(megabytes * 1_000_000))
        message["images"] = [base64.b64encode(image).decode()]
    return {"model": VISION[0], "messages": [message], "stream": False}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10, help="requests per path and size")
    parser.add_argument("--sizes", default="0,0.1,1,5", help="image sizes in MB (0: no image)")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    with bench_cluster(KEY, NODE, also=(VISION,)) as (cluster, standin, watched):
        headers = {"Authorization": "Bearer " + KEY["key"]}
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        baseline = None
        with httpx.Client(timeout=120) as direct, httpx.Client(timeout=120, headers=headers) as gw:
            for size in sorted(set(sizes)) * WARM_UP:
                gw.post(cluster.base_url + "/api/chat", json=body(size)).raise_for_status()
            for size in sizes:
                asked = body(size)
                times: dict[str, list[float]] = {"direct": [], "gateway": []}
                before = cpu(watched)
                for _ in range(args.samples):
                    for name, c, url in (("direct", direct, standin.url), ("gateway", gw, cluster.base_url)):
                        t = time.perf_counter()
                        reply = c.post(url + "/api/chat", json=asked)
                        times[name].append(time.perf_counter() - t)
                        reply.raise_for_status()
                spent = {n: v - before[n] for n, v in cpu(watched).items()}
                p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
                added = p50["gateway"] - p50["direct"]
                baseline = added if baseline is None and size == 0 else baseline
                over = "" if baseline is None or size == 0 else f", {added - baseline:+.1f} ms over the text-only chat's"
                print(f"{size:4.1f} MB: direct {summary(times['direct'])}; gateway {summary(times['gateway'])} "
                      f"(+{added:.1f} ms{over}); CPU ms/request "
                      + ", ".join(f"{n} {s / args.samples * 1000:.1f}" for n, s in spent.items()))
        print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
