"""Random bytes and truncated files at every entry point that reads a file.

Each entry point gets: an empty file, random bytes, random printable garbage, and a valid file
cut at several points. Random input must be rejected with one line on stderr and exit code
2; a cut file is either still valid (exit 0) or rejected the same way; nothing may end in a
traceback. The draws come from a seeded numpy Generator, so a failure reproduces.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import WORKLOAD, assert_rejected, heddle

from heddle.models.fleet import shipped_fleet_path
from heddle.sim.scenario import shipped_scenario_path
from heddle.traces import read_trace, shipped_trace_path, write_trace

TASKS = Path(__file__).resolve().parents[2] / "heddle" / "data" / "tasks" / "demo.yaml"
AZURE = Path(__file__).resolve().parents[1] / "data" / "azure"



def _small_trace(tmp: Path, suffix: str = ".htr") -> bytes:
    trace = read_trace(shipped_trace_path("demo"))
    path = tmp / f"seed{suffix}"
    write_trace(type(trace).from_frame(trace.df.head(40), trace.meta), path)
    return path.read_bytes()


def _azure_csv() -> bytes:
    files = sorted(p for p in AZURE.iterdir() if p.suffix == ".csv")
    return files[0].read_bytes()[:2000] if files else b"TIMESTAMP,ContextTokens,GeneratedTokens\n"


# entry point -> (argv with {} for the file, suffix, the valid file's bytes or None)
ENTRY_POINTS = {
    "sim --fleet": (["sim", "--fleet", "{}", "--horizon", "1"], ".yaml", lambda t: shipped_fleet_path("small").read_bytes()),
    "sim --trace": (["sim", "--trace", "{}", "--horizon", "1", "--policy", "fast"], ".htr", _small_trace),
    "sim --trace workload": (["sim", "--trace", "{}", "--horizon", "1", "--policy", "fast"], ".yaml", lambda t: WORKLOAD.encode()),
    "sim --scenario": (["sim", "--scenario", "{}", "--horizon", "1", "--policy", "fast"], ".yaml", lambda t: shipped_scenario_path("flaky").read_bytes()),
    "place --fleet": (["place", "--fleet", "{}", "--policy", "fast"], ".yaml", lambda t: shipped_fleet_path("demo").read_bytes()),
    "place --tasks": (["place", "--tasks", "{}", "--policy", "fast"], ".yaml", lambda t: TASKS.read_bytes()),
    "check --fleet": (["check", "--fleet", "{}"], ".yaml", lambda t: shipped_fleet_path("office").read_bytes()),
    "check --trace": (["check", "--trace", "{}"], ".htr", _small_trace),
    "check --trace parquet": (["check", "--trace", "{}"], ".parquet", lambda t: _small_trace(t, ".parquet")),
    "trace head parquet": (["trace", "head", "{}"], ".parquet", lambda t: _small_trace(t, ".parquet")),
    "advise --fleet": (["advise", "--fleet", "{}", "--trace", "/nonexistent.htr"], ".yaml", None),
    "models fleet": (["models", "fleet", "{}"], ".yaml", lambda t: shipped_fleet_path("demo").read_bytes()),
    "trace stats": (["trace", "stats", "{}"], ".htr", _small_trace),
    "trace head": (["trace", "head", "{}"], ".htr.gz", None),
    "trace import azure": (["trace", "import", "azure", "{}", "-o", "{out}"], ".csv", lambda t: _azure_csv()),
    "trace import --mapping": (["trace", "import", "csv", "{csv}", "--mapping", "{}", "-o", "{out}"], ".yaml", None),
    "trace synth --config": (["trace", "synth", "--config", "{}", "--hours", "0.1", "-o", "{out}"], ".yaml",
                             lambda t: b"rate_per_h: 30\ntokens: code\nprivacy_mix: {public: 1.0}\n"),
    "HEDDLE_CONFIG": (["models", "fleet"], ".yaml", lambda t: b"fleet: office\nseed: 3\n"),
    "models calibrate": (["models", "calibrate", "{}", "--dry-run"], ".jsonl", lambda t: _records()),
}


def _records() -> bytes:
    """Speed records of two runs (a prefill and a decode figure each), as an agent writes them."""
    run = ('{"node": "s", "device": "m2-ultra-76", "backend": "ollama", "model": "llama-3.1-8b", '
           '"quant": "q4_k_m", "prompt_tokens": %d, "output_tokens": 100, "ttft_s": %s, '
           '"decode_tokens_per_s": %s, "at": 0}\n')
    return (run % (500, "0.6", "60.5") + run % (1500, "1.9", "55.0")).encode()


EMPTY_IS_DEFAULTS = {"HEDDLE_CONFIG", "trace synth --config"}
"""Files of settings where an empty file means "no overrides", not an error."""


def _invoke(name: str, path: Path, tmp: Path):
    argv, _, _ = ENTRY_POINTS[name]
    csv = tmp / "plain.csv"
    csv.write_text("a,b\n1,2\n")
    args = [a.replace("{}", str(path)).replace("{out}", str(tmp / "out.htr")).replace("{csv}", str(csv))
            for a in argv]
    env = {"HEDDLE_CONFIG": str(path) if name == "HEDDLE_CONFIG" else str(tmp / "no-config.yaml")}
    return heddle(*args, env=env)


def _random_inputs(rng: np.random.Generator) -> list[bytes]:
    printable = bytes(rng.integers(32, 127, size=300, dtype=np.uint8))
    return [b"", rng.bytes(512), printable, b"\x1f\x8b" + rng.bytes(200), b"HEDDLE-TRACE 1\n" + rng.bytes(100),
            b"- [\n  {{: ]\n", b"nodes: 7\n"]


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_random_bytes_are_rejected_in_one_line(name, tmp_path):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    suffix = ENTRY_POINTS[name][1]
    for k, blob in enumerate(_random_inputs(rng)):
        path = tmp_path / f"random{k}{suffix}"
        path.write_bytes(blob)
        result = _invoke(name, path, tmp_path)
        if name in EMPTY_IS_DEFAULTS and blob == b"":
            assert result.exit_code == 0, result.stderr
            continue
        assert_rejected(result)


@pytest.mark.parametrize("name", sorted(n for n, (_, _, valid) in ENTRY_POINTS.items() if valid is not None))
def test_truncated_files_are_valid_or_rejected_in_one_line(name, tmp_path):
    _, suffix, valid = ENTRY_POINTS[name]
    data = valid(tmp_path)
    rng = np.random.default_rng(len(data))
    cuts = sorted({1, len(data) // 2, len(data) - 1, *rng.integers(1, len(data), size=3).tolist()})
    for cut in cuts:
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(data[:cut])
        result = _invoke(name, path, tmp_path)
        # a binary trace knows its own length (.htr trailer, Parquet footer): a cut is caught
        if suffix.startswith((".htr", ".parquet")) or result.exit_code != 0:
            assert_rejected(result)
        assert "Traceback" not in result.stdout + result.stderr
