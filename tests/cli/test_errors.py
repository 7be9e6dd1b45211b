"""Every bad input the issue tracker listed ends in one line naming the file/field, exit code 2."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import assert_rejected, heddle

from heddle.traces import read_trace, shipped_trace_path, write_trace


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _demo_trace(tmp_path: Path) -> bytes:
    target = tmp_path / "demo.htr"
    write_trace(read_trace(shipped_trace_path("demo")), target)
    return target.read_bytes()


def test_a_directory_as_trace_names_it(tmp_path):
    assert_rejected(heddle("sim", "--trace", str(tmp_path)), str(tmp_path), "directory")


def test_a_binary_scenario_tasks_or_config_file(tmp_path):
    blob = _binary(tmp_path / "blob.yaml")
    assert_rejected(heddle("sim", "--scenario", str(blob)), str(blob), "not a scenario file")
    assert_rejected(heddle("place", "--tasks", str(blob)), str(blob), "not a tasks file")
    assert_rejected(heddle("check", env={"HEDDLE_CONFIG": str(blob)}), str(blob))


def test_sim_out_that_is_a_file_is_refused_before_the_run(tmp_path):
    existing = tmp_path / "metrics"
    existing.write_text("keep me")
    result = heddle("sim", "--out", str(existing))
    assert_rejected(result, str(existing), "not a directory")
    assert "simulated in" not in result.stdout  # refused before simulating, not after
    assert existing.read_text() == "keep me"


def test_nats_auth_out_to_a_directory_or_a_missing_parent(tmp_path):
    assert_rejected(heddle("events", "nats-auth", "--out", str(tmp_path)), str(tmp_path), "is a directory")
    missing = tmp_path / "no" / "such" / "auth.conf"
    assert_rejected(heddle("events", "nats-auth", "--out", str(missing)), "does not exist")


def test_a_corrupted_chunk_is_one_short_line(tmp_path):
    data = bytearray(_demo_trace(tmp_path))
    header_end = data.index(b"\n", data.index(b"\n") + 1)
    data[header_end + 10: header_end + 400] = b"x" * 390
    bad = tmp_path / "corrupt.htr"
    bad.write_bytes(bytes(data))
    line = assert_rejected(heddle("trace", "stats", str(bad)), str(bad))
    assert len(line) <= 420


def test_a_header_only_trace_is_cut_short(tmp_path):
    data = _demo_trace(tmp_path)
    bad = tmp_path / "header.htr"
    bad.write_bytes(data[: data.index(b"\n", data.index(b"\n") + 1) + 1])
    line = assert_rejected(heddle("sim", "--trace", str(bad)), str(bad), "cut short")
    assert "<" not in line  # no enum or object reprs


def test_synth_errors_name_the_option_not_pydantic(tmp_path):
    line = assert_rejected(heddle("trace", "synth", "--days", "-1", "-o", str(tmp_path / "x.htr")), "--days")
    assert "pydantic" not in line and "http" not in line and "duration_h" not in line


def test_import_set_privacy_names_the_field_and_the_choices(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    line = assert_rejected(heddle("trace", "import", "azure", str(src), "--set", "privacy=secret",
                                  "-o", str(tmp_path / "x.htr")), "privacy", "public")
    assert "pydantic" not in line and "http" not in line


def test_import_of_an_unknown_model_lists_close_matches(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    out = tmp_path / "x.htr"
    assert_rejected(heddle("trace", "import", "azure", str(src), "--set", "model=gpt-oss-2b", "-o", str(out)),
                    "'gpt-oss-2b'", "did you mean", "gpt-oss-20b")
    assert not out.exists()


def test_a_missing_fleet_file_is_not_called_a_shipped_name(tmp_path):
    line = assert_rejected(heddle("sim", "--fleet", "missing.yaml"), "missing.yaml", "no such file")
    assert "shipped" in line  # and it says what names would have worked


def test_trace_stats_of_a_directory(tmp_path):
    line = assert_rejected(heddle("trace", "stats", str(tmp_path)), "a directory without .parquet files")
    assert "Errno" not in line


def test_models_predict_refuses_impossible_steps():
    result = heddle("models", "predict", "--device", "rtx-4090", "--model", "llama-3.1-70b", "--quant", "q4_k_m")
    assert result.exit_code == 0 and "does NOT fit" in result.stdout and "tokens/s" not in result.stdout
    assert_rejected(heddle("models", "predict", "--device", "m4-max-40", "--model", "llama-3.1-8b",
                           "--prompt-tokens", "1000000"), "context window", "131,072")
    embed = heddle("models", "predict", "--device", "m4-max-40", "--model", "nomic-embed-text-v1.5")
    assert embed.exit_code == 0 and "decode" not in embed.stdout and "prefill" in embed.stdout
    assert_rejected(heddle("models", "predict", "--device", "m4-max-40", "--model", "nomic-embed-text-v1.5",
                           "--output-tokens", "5"), "embedding")


def test_every_command_uses_the_same_exit_code_for_bad_input(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    for args in (["sim", "--fleet", missing], ["place", "--fleet", missing], ["advise", "--fleet", missing],
                 ["check", "--fleet", missing], ["models", "fleet", missing], ["trace", "stats", missing],
                 ["catalog", "show", "no-such-id"], ["sim", "--policy", "psychic"]):
        assert heddle(*args).exit_code == 2, args


def test_gzip_of_garbage_as_trace(tmp_path):
    bad = tmp_path / "bad.htr.gz"
    bad.write_bytes(gzip.compress(json.dumps({"not": "a trace"}).encode()))
    assert_rejected(heddle("trace", "head", str(bad)), str(bad))


def test_a_name_that_looks_like_markup_is_printed_as_given():
    assert_rejected(heddle("sim", "--fleet", "[bold]x.yaml"), "[bold]x.yaml")


def test_the_live_commands_name_a_bad_file_in_one_line(tmp_path):
    # these printed tracebacks: a binary workload to submit, a binary --fleet to scheduler/up
    blob = _binary(tmp_path / "blob.yaml")
    nowhere = ["--nats", "nats://127.0.0.1:1"]  # never reached: the file is checked first
    assert_rejected(heddle("submit", str(blob), *nowhere), str(blob), "not a workload file")
    assert_rejected(heddle("submit", str(tmp_path), *nowhere), str(tmp_path), "is a directory")
    assert_rejected(heddle("scheduler", "--fleet", str(blob), *nowhere), str(blob), "not a fleet file")
    assert_rejected(heddle("up", "--fleet", str(blob), "--data-dir", str(tmp_path / "d")), str(blob))
    assert_rejected(heddle("twin", "check", "--fleet", str(blob), "--recording", str(tmp_path)), str(blob))


def test_every_command_runs_guarded():
    # whatever a command did not foresee ends in one line and an exit code (main._guard_all)
    import typer.main

    from heddle.cli.main import app

    def callbacks(group):
        for cmd in getattr(group, "commands", {}).values():
            if getattr(cmd, "commands", None) is None:
                yield cmd.name, cmd.callback
            yield from callbacks(cmd)

    found = list(callbacks(typer.main.get_command(app)))
    assert len(found) > 30
    for name, callback in found:
        # typer wraps the command's function; the function it wraps is the guarded one
        inner = getattr(callback, "__wrapped__", callback)
        assert any(getattr(f, "_heddle_guarded", False) for f in (callback, inner)), name


def test_a_settings_file_that_is_a_directory(tmp_path):
    assert_rejected(heddle("check", env={"HEDDLE_CONFIG": str(tmp_path)}), str(tmp_path), "is a directory")


def test_advise_refuses_an_out_that_is_a_file_before_it_runs(tmp_path):
    existing = tmp_path / "advice"
    existing.write_text("keep me")
    result = heddle("advise", "--out", str(existing))
    assert_rejected(result, str(existing), "not a directory")
    assert "warning" not in result.stderr  # refused before the preflight, let alone the replays
    assert existing.read_text() == "keep me"


def test_trace_errors_name_the_subcommand_and_the_field(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    line = assert_rejected(heddle("trace", "import", "azure", str(src), "--set", "colour=red",
                                  "-o", str(tmp_path / "x.parquet")), "heddle trace import:", "--set colour")
    assert "no such field" in line and "privacy" in line and "Extra inputs" not in line
    assert_rejected(heddle("trace", "stats", str(tmp_path)), "heddle trace stats:")


def test_a_cluster_command_with_no_cluster_says_so(tmp_path):
    # nats-py retried a refused first connect 60 times, 2 s apart: `heddle status` sat silent
    # for two minutes. Now one line, exit 1 (the input was fine; the cluster is not there).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    for args in (["status"], ["drain", "mini"]):
        done = subprocess.run([sys.executable, "-m", "heddle.cli.main", *args, "--nats", f"nats://127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "HEDDLE_DATA_DIR": str(tmp_path)})
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and len(lines) == 1, (args, done.stderr)
        assert f"cannot reach NATS at nats://127.0.0.1:{port}" in lines[0] and "heddle up" in lines[0]


def test_a_scheduler_waiting_for_nats_says_so_once_and_stops_when_told(tmp_path):
    # it printed a traceback five times a second, and SIGTERM/Ctrl-C could not stop it
    import selectors
    import signal

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "heddle.cli.main", "scheduler", "--nats", f"nats://127.0.0.1:{port}",
                              "--data-dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(child.stderr, selectors.EVENT_READ)
            first = child.stderr.readline() if sel.select(timeout=60) else ""
        assert f"NATS at nats://127.0.0.1:{port}" in first and "(retrying)" in first, first
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 0
        rest = child.stderr.read()
        assert "Traceback" not in rest and "(retrying)" not in rest, rest  # said once
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
