"""Cost of a performance-model lookup: cached `llm_rates` vs the uncached formula (baseline).

uv run python benchmarks/bench_perf_model.py [--quick]
Prints calls per second for both and their ratio (measured in the same run).
"""

from __future__ import annotations

import argparse
import time

from heddle.models import catalog, perf
from heddle.models.perf_params import backend_params


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer calls")
    n = 20_000 if ap.parse_args().quick else 200_000
    devices = list(catalog.devices().values())
    models = [m for m in catalog.models().values() if "q8_0" in m.bytes_per_weight]
    combos = [(d, m) for d in devices for m in models]

    t0 = time.perf_counter()
    for i in range(n):
        d, m = combos[i % len(combos)]
        perf.rates_with(backend_params(d.backend), d, m, "q8_0", 1 + i % 4, 512)
    uncached_s = time.perf_counter() - t0

    perf._rates.cache_clear()
    t0 = time.perf_counter()
    for i in range(n):
        d, m = combos[i % len(combos)]
        perf.llm_rates(d, m, "q8_0", batch=1 + i % 4, context_tokens=512)
    cached_s = time.perf_counter() - t0

    print(f"uncached formula (baseline): {n / uncached_s:,.0f} calls/s")
    print(f"cached llm_rates:            {n / cached_s:,.0f} calls/s")
    print(f"speed-up: {uncached_s / cached_s:.1f}x  ({len(combos) * 4} distinct keys, {n:,} calls)")


if __name__ == "__main__":
    main()
