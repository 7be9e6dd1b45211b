"""`heddle trace ...` as a user runs it, and the shipped samples the CLI defaults to."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.traces import (
    import_azure,
    read_trace,
    shipped_trace_names,
    shipped_trace_path,
    write_trace,
)
from heddle.traces.synth import SynthConfig, synthesize
from heddle.traces.trace import to_tasks
from tests.traces.conftest import SHARED_TRACES

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["trace", *args], catch_exceptions=False)


def test_synth_is_seeded_down_to_the_bytes(tmp_path: Path):
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    for path, seed in ((a, "5"), (b, "5"), (c, "6")):
        result = run("synth", "--seed", seed, "--hours", "2", "--rate", "300", "-o", str(path))
        assert result.exit_code == 0, result.output
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    trace = read_trace(a)
    assert 0 < trace.duration_s <= 2 * 3600


def test_synth_options_reach_the_trace(tmp_path: Path):
    out = tmp_path / "p.parquet"
    result = run("synth", "--hours", "4", "--rate", "200", "--privacy",
                 "public=0,sensitive=0,personal=1", "--shapes", "single=0,pipeline=1,council=0",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    df = read_trace(out).df
    assert set(df["privacy"]) == {"personal"}
    assert (df["pipeline_id"] != "").all()


def test_synth_rejects_a_bad_mix_with_the_field_named(tmp_path: Path):
    result = run("synth", "--privacy", "public=0.9", "-o", str(tmp_path / "x.parquet"))
    assert result.exit_code == 2
    assert "privacy_mix" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_import_then_stats_with_plots(tmp_path: Path):
    out = tmp_path / "conv.parquet"
    result = run("import", "azure", str(SHARED_TRACES / "azure_llm_2023_conv.csv"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "19,366 of 19,366" in result.output
    result = run("stats", str(out), "--plots", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    assert "19,366" in result.output and "public 100.0%" in result.output
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["arrivals.png", "privacy.png", "tokens.png"]  # < 1 day: no diurnal plot
    assert all((tmp_path / "plots" / n).read_bytes()[:4] == b"\x89PNG" for n in pngs)


def test_import_bad_rows_fail_or_are_counted(tmp_path: Path):
    src = tmp_path / "bad.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   "2023-11-16 18:15:46,1,1\n2023-11-16 18:15:47,1,oops\n2023-11-16 18:15:48,2\n")
    out = tmp_path / "out.parquet"
    result = run("import", "azure", str(src), "-o", str(out))
    assert result.exit_code == 2
    assert "line 3" in result.output and "GeneratedTokens" in result.output
    assert not out.exists()
    result = run("import", "azure", str(src), "-o", str(out), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "imported 1 of 3 rows" in result.output and "skipped 2 rows" in result.output
    assert len(read_trace(out)) == 1


def test_generic_import_with_map_and_mapping_file(tmp_path: Path):
    src = tmp_path / "mine.csv"
    src.write_text("t,in,out,cls\n0,5,6,sensitive\n2.5,7,8,public\n")
    out = tmp_path / "mine.parquet"
    result = run("import", "csv", str(src), "-o", str(out), "--map", "arrival_s=t",
                 "--map", "prompt_tokens=in,output_tokens=out,privacy=cls",
                 "--set", "owner=carol,model=qwen2.5-7b")
    assert result.exit_code == 0, result.output
    df = read_trace(out).df
    assert list(df["privacy"]) == ["sensitive", "public"] and set(df["owner"]) == {"carol"}
    mapping = tmp_path / "map.yaml"
    mapping.write_text(yaml.safe_dump({"columns": {"arrival_s": "t", "prompt_tokens": "in"},
                                       "defaults": {"privacy": "personal"}}))
    result = run("import", "csv", str(src), "-o", str(out), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    assert set(read_trace(out).df["privacy"]) == {"personal"}
    result = run("import", "csv", str(src), "-o", str(out))
    assert result.exit_code == 2 and "mapping" in result.output


def test_stats_of_a_missing_file_is_a_clear_error():
    result = run("stats", "no-such-trace")
    assert result.exit_code == 2
    assert "no-such-trace" in result.output and "demo" in result.output


def test_shipped_samples_exist_and_are_what_their_configs_generate():
    assert {"demo", "demo-14d", "azure-code"} <= set(shipped_trace_names())
    data = shipped_trace_path().parent
    for name in ("demo", "demo-14d"):
        cfg = SynthConfig.model_validate(yaml.safe_load((data / f"{name}.synth.yaml").read_text()))
        assert read_trace(shipped_trace_path(name)).equals(synthesize(cfg)), name
    demo = read_trace(shipped_trace_path("demo"))
    assert 2_000 <= len(demo) <= 5_000
    assert set(demo.df["privacy"]) == {"public", "sensitive", "personal"}
    assert (demo.df["depends_on"] != "").any()
    tasks = list(to_tasks(demo))
    assert len(tasks) == len(demo) and len({t.id for t in tasks}) == len(tasks)
    assert shipped_trace_path("demo-14d").stat().st_size < 1_000_000
    azure = read_trace(shipped_trace_path("azure-code"))
    assert len(azure) == 8_819 and "CC-BY 4.0" in azure.meta["attribution"]
    assert azure.equals(import_azure(SHARED_TRACES / "azure_llm_2023_code.csv").trace)
    assert all(shipped_trace_path(n).suffix == ".parquet" for n in shipped_trace_names())


def test_convert_rewrites_legacy_files_as_parquet(tmp_path: Path):
    demo = read_trace(shipped_trace_path("demo"))
    old, other = tmp_path / "demo.htr.gz", tmp_path / "other.htr"
    write_trace(demo, old)
    write_trace(demo, other)
    result = run("stats", str(old))
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and "heddle trace convert" in result.output
    result = run("convert", str(old), str(other))
    assert result.exit_code == 0, result.output
    assert "note:" not in run("stats", str(tmp_path / "demo.parquet")).output
    assert "3,036 rows" in result.output
    assert read_trace(tmp_path / "demo.parquet").equals(demo)
    assert read_trace(tmp_path / "other.parquet").equals(demo)
    result = run("convert", str(old), "-o", str(tmp_path / "named.parquet"))
    assert result.exit_code == 0, result.output
    assert read_trace(tmp_path / "named.parquet").equals(demo)
    result = run("convert", str(old), str(other), "-o", str(tmp_path / "x.parquet"))
    assert result.exit_code == 2 and "one input" in result.output


def test_head_shows_the_first_rows_and_checks_columns():
    result = run("head", "demo", "-n", "3", "--columns", "task_id,privacy,deadline_s")
    assert result.exit_code == 0, result.output
    first = read_trace(shipped_trace_path("demo")).df.head(3)
    for task_id in first["task_id"]:
        assert task_id in result.output
    assert first["task_id"].iloc[0] in result.output
    result = run("head", "demo", "--columns", "task_id,colour")
    assert result.exit_code == 2 and "colour" in result.output
