"""`heddle advise` end to end on files, and its errors on bad input."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.traces import write_trace
from tests.advisor.conftest import steady_trace

FLEET_YAML = """\
name: tiny
electricity_usd_per_kwh: 0.25
cloud_offers: [claude-haiku-4.5]
nodes:
  - id: mini
    device: m4-10
    memory_gb: 16
    owner: alice
"""


def _inputs(tmp_path: Path, every_s: float, days: int) -> list[str]:
    """A steady sensitive 70B workload and the tiny fleet, as files: the `advise` arguments."""
    trace = steady_trace([{"every_s": every_s, "model": "llama-3.1-70b", "quant": "q8_0", "prompt": 500,
                           "output": 200, "privacy": "sensitive", "owner": "alice", "deadline_s": 3600}],
                         days=days)
    write_trace(trace, tmp_path / "t.htr.gz")
    (tmp_path / "fleet.yaml").write_text(FLEET_YAML)
    return ["--trace", str(tmp_path / "t.htr.gz"), "--fleet", str(tmp_path / "fleet.yaml")]


def test_advise_on_files_prints_a_ranked_table_and_writes_the_report(tmp_path: Path):
    out = tmp_path / "report"
    args = ["advise", *_inputs(tmp_path, 900, days=2), "--budget", "6000", "--miss-value", "0.5",
            "--shortlist", "2", "--out", str(out)]
    out.mkdir()
    (out / "advice.html").write_text("an earlier report")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--force" in refused.output
    assert (out / "advice.html").read_text() == "an earlier report"  # untouched
    result = CliRunner().invoke(app, [*args, "--force"], terminal_width=200)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())  # rich wraps to the terminal width
    assert "RECOMMENDED" in result.output and "pays back in" in flat
    assert "Why work fails today" in flat and "no node of yours can hold llama-3.1-70b q8_0" in flat
    assert "privacy violations in all replays: 0" in flat
    for name in ("advice.html", "advice.md", "advice.json"):
        assert (out / name).stat().st_size > 0


def test_advise_names_the_missing_file(tmp_path: Path):
    missing = tmp_path / "nope.htr"
    result = CliRunner().invoke(app, ["advise", "--trace", str(missing), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_advise_refuses_a_bad_option_value(tmp_path: Path):
    result = CliRunner().invoke(app, ["advise", "--budget", "-5", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "budget" in result.output.lower()


def test_advise_refuses_an_unknown_policy(tmp_path: Path):
    result = CliRunner().invoke(app, ["advise", "--policy", "psychic", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "psychic" in result.output and "fast" in result.output


def test_check_sampling_reports_the_full_replay(tmp_path: Path):
    result = CliRunner().invoke(app, [
        "advise", *_inputs(tmp_path, 1800, days=4),
        "--sample-days", "2", "--shortlist", "1", "--check-sampling", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    # a steady load: two sampled days give the same payback as all four
    assert "from 2 days vs" in flat and "from all 4 days (0.0% apart)" in flat


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--miss-value-priority", "high=2", "PRIORITY=USD"),
    ("--miss-value-priority", "1=-2", "negative"),
    ("--resale", "orin", "NODE=USD"),
    ("--resale", "no-such-node=100", "no node no-such-node in fleet demo"),
])
def test_advise_names_a_bad_key_value_option(tmp_path: Path, option: str, value: str, says: str):
    result = CliRunner().invoke(app, ["advise", option, value, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert option in result.output and says in " ".join(result.output.split())


def test_advise_reads_a_trace_whose_requests_named_an_api_offer(tmp_path: Path):
    # what the live runtime records for gateway requests naming claude-sonnet-4.6: only that
    # offer runs them, so no purchase can take them; the local rows are advised as before
    trace = steady_trace([
        {"every_s": 1800, "model": "claude-sonnet-4.6", "quant": "", "prompt": 500, "output": 200,
         "privacy": "public", "owner": "alice", "deadline_s": 3600},
        {"every_s": 1800, "model": "llama-3.1-8b", "quant": "q4_k_m", "prompt": 500, "output": 200,
         "privacy": "sensitive", "owner": "alice", "deadline_s": 3600, "offset_s": 60}], days=1)
    write_trace(trace, tmp_path / "t.htr.gz")
    (tmp_path / "fleet.yaml").write_text(FLEET_YAML.replace("[claude-haiku-4.5]", "[claude-sonnet-4.6]")
                                         + "budgets:\n  main: {limit_usd: 50}\n")
    result = CliRunner().invoke(app, ["advise", "--trace", str(tmp_path / "t.htr.gz"), "--fleet",
                                      str(tmp_path / "fleet.yaml"), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "unknown model" not in result.output and (tmp_path / "report" / "advice.md").exists()
