"""Learning from use: records of measured speeds refit the performance model (heddle models
calibrate), the error on the records drops, and later predictions use the fit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from heddle.models import catalog
from heddle.models.learned import CalibrationError, PerfRecord, calibrate, load_records, save_params
from heddle.models.perf import rates_with
from heddle.models.perf_params import METAL, learned_params

REPO = Path(__file__).resolve().parents[2]
TRUTH = replace(METAL, bandwidth_efficiency=0.7, decode_layer_overhead_s=3e-4,
                prefill_compute_efficiency=(0.5, 0.45, 0.4))
"""A Mac Studio that runs slower than the shipped fit says (a busier runtime, say)."""


def recorded_runs(seed: int = 1) -> list[dict]:
    """What agents on that machine would record: its true speeds with 5% measurement noise."""
    rng = np.random.default_rng(seed)
    device = catalog.device("m2-ultra-76")
    runs = []
    for model_id, quant in [("llama-3.1-8b", "q4_k_m"), ("qwen2.5-7b", "q8_0"), ("qwen2.5-32b", "q4_k_m")]:
        model = catalog.model(model_id)
        for prompt, output in [(300, 200), (1200, 100), (2000, 300)]:
            prefill = rates_with(TRUTH, device, model, quant, 1, prompt)[0]
            decode = rates_with(TRUTH, device, model, quant, 1, prompt + output // 2)[1]
            noise = rng.lognormal(0.0, 0.05, 2)
            runs.append({"node": "studio", "device": device.id, "backend": "lm-studio", "model": model_id,
                         "quant": quant, "prompt_tokens": prompt, "output_tokens": output,
                         "ttft_s": prompt / (prefill * noise[0]), "decode_tokens_per_s": decode * noise[1],
                         "at": 1.0})
    return runs


def test_the_fit_recovers_the_machine_and_keeps_what_no_record_measured():
    (fit,) = calibrate([PerfRecord(**r) for r in recorded_runs()], {"metal": METAL})
    assert fit.backend == "metal" and fit.rows == 18
    assert fit.error_before_pct > 30  # the shipped fit is far off for this machine
    assert fit.error_after_pct < 5 and fit.error_left_out_pct < 6  # about the 5% noise
    # no f16 model was run: the f16 efficiencies stay as they were
    assert fit.after.decode_compute_efficiency[0] == METAL.decode_compute_efficiency[0]
    assert fit.after.prefill_compute_efficiency[0] == METAL.prefill_compute_efficiency[0]


def test_records_of_one_kind_only_are_refused_with_what_is_missing():
    short = [PerfRecord(**{**r, "prompt_tokens": 10}) for r in recorded_runs()]
    with pytest.raises(CalibrationError, match="only decode figures"):
        calibrate(short)


@pytest.mark.parametrize(("line", "expected"), [
    ('{"node": "a"}', r"records.jsonl:2: backend: Field required"),
    (('{"node": "a", "device": "m2-ultra-76", "backend": "x", "model": "m", "quant": "q", "prompt_tokens": -1, '
      '"output_tokens": 1, "at": 0}'), r"records.jsonl:2: prompt_tokens: Input should be greater than or equal to 0"),
    ("not json", r"records.jsonl:2: \(line\): Invalid JSON"),
])
def test_bad_records_name_file_line_and_field(tmp_path, line, expected):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(recorded_runs()[0]) + "\n" + line + "\n")
    with pytest.raises(CalibrationError, match=expected):
        load_records(path)


def heddle(*args: str, config: Path) -> str:
    env = {**os.environ, "HEDDLE_CONFIG": str(config), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "heddle.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_calibrate_prints_the_error_and_later_predictions_use_the_fit(tmp_path):
    records = tmp_path / "perf-records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in recorded_runs()))
    config = tmp_path / "home" / "config.yaml"
    predict = ("models", "predict", "--device", "m2-ultra-76", "--model", "llama-3.1-8b", "--json")
    shipped = json.loads(heddle(*predict, config=config))

    out = heddle("models", "calibrate", str(records), "--dry-run", config=config)
    assert "metal" in out and "--dry-run" in out and not (config.parent / "perf-params.json").exists()
    out = heddle("models", "calibrate", str(records), config=config)
    rows, before, after = re.search(r"│ metal\s*│\s*(\d+)\s*│\s*([\d.]+)%\s*│\s*([\d.]+)%", out).groups()
    assert int(rows) == 18 and float(before) > 30 and float(after) < 5
    assert set(learned_params(config.parent / "perf-params.json")) == {"metal"}

    calibrated = json.loads(heddle(*predict, config=config))
    assert calibrated["decode_tokens_per_s"] < 0.8 * shipped["decode_tokens_per_s"]  # the slower machine


def test_saved_parameters_round_trip(tmp_path):
    (fit,) = calibrate([PerfRecord(**r) for r in recorded_runs()], {"metal": METAL})
    path = tmp_path / "perf-params.json"
    save_params(path, [fit])
    assert learned_params(path) == {"metal": fit.after}


def test_the_learning_from_use_examples_print_what_the_doc_says(capsys):
    doc = (REPO / "docs" / "performance-model.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Learning from use"):doc.index("## Known limits")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    said = re.findall(r"^prints `(.*?)`", section, re.MULTILINE)
    assert len(blocks) == len(said) == 2
    for block, expected in zip(blocks, said, strict=True):
        exec(compile(block, "docs/performance-model.md", "exec"), {})  # noqa: S102
        assert capsys.readouterr().out.strip() == expected
