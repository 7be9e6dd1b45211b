"""A worker process: runs processor steps one at a time for the agent (stdlib only).

Started by path (``python worker_main.py``) so it imports nothing of heddle and starts in
tens of milliseconds. It reads one JSON request per line on stdin --
``{"target": "package.module:function", "payload": ...}`` -- and writes one JSON reply per
line on its own copy of stdout: ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": "..."}``. The step's own prints go to stderr so they cannot corrupt the replies.
The agent kills the process on a timeout or a cancel; nothing here needs to be interruptible.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import json
import os
import sys
import time
import traceback

BURN_BLOCK = b"heddle-burn-0123456789abcdef0123456789abcdef0123456789abcdef01"
"""64 bytes hashed per burn iteration (one SHA-256 compression round plus padding)."""
CPU_LIMIT_ENV = "HEDDLE_BURN_CPU_LIMIT"
"""Environment variable the agent sets on its workers: the share of a core a burn may use."""
PACE_ITERATIONS = 200
"""Iterations between two looks at the pace (~0.1 ms of CPU)."""


def burn(payload: object, cpu_limit: float | None = None) -> dict:
    """CPU work of a given amount: ``{"iterations": N}`` chained SHA-256 hashes of 64 bytes.

    A fixed amount of work, not of time, so a faster core finishes sooner, as the twin assumes.
    With ``cpu_limit`` (0-1) it pauses so its CPU time stays at that share of its wall time (a
    core capped like ``docker --cpus``): it then takes cpu time / limit, however busy the
    machine is, as long as the machine gives it at least that share.
    """
    iterations = payload.get("iterations") if isinstance(payload, dict) else payload
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
        raise ValueError(f"burn: expected payload {{'iterations': N}} with N >= 0, got {payload!r}")
    digest, done = BURN_BLOCK, 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while done < iterations:
        step = min(PACE_ITERATIONS if cpu_limit else iterations, iterations - done)
        for _ in range(step):
            digest = hashlib.sha256(digest + BURN_BLOCK[32:]).digest()
        done += step
        if cpu_limit:
            ahead_s = (time.process_time() - cpu0) / cpu_limit - (time.perf_counter() - wall0)
            if ahead_s > 0:
                time.sleep(ahead_s)
    # its wall time here: what the step took apart from the agent's round trip to this process
    return {"iterations": iterations, "digest": digest.hex()[:16], "wall_s": round(time.perf_counter() - wall0, 6)}


def _limit() -> float | None:
    value = os.environ.get(CPU_LIMIT_ENV)
    return float(value) if value else None


BUILTINS = {"burn": lambda payload: burn(payload, _limit())}


def resolve(target: str):
    """``package.module:function`` (or a built-in name) -> the callable."""
    if target in BUILTINS:
        return BUILTINS[target]
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected an import path 'package.module:function', got {target!r}")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def handle(request: dict) -> dict:
    """Run one request; the reply says the CPU seconds this process used for it (``cpu_s``)
    and the wall time it took here (``wall_s``: without the agent's side of the call)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        fn = resolve(request["target"])
        result = fn(request.get("payload"))
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return {"ok": True, "result": result, "cpu_s": time.process_time() - cpu0,
                "wall_s": time.perf_counter() - wall0}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}{where}"}


async def _await(awaitable):
    return await awaitable


def main() -> None:
    # The replies get a private copy of stdout; fd 1 and sys.stdout now point at stderr.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Run from the agent's working directory like `python -m`, not from heddle's source tree.
    sys.path[0] = os.getcwd()
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = handle(json.loads(line))
        try:
            text = json.dumps(reply)
        except (TypeError, ValueError) as exc:
            text = json.dumps({"ok": False, "error": f"result is not JSON: {exc}"})
        replies.write(text + "\n")


if __name__ == "__main__":
    main()
