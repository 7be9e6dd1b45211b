"""`heddle catalog` and `heddle models` as a user runs them."""

import json

from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.models import catalog

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_predict_json_has_the_documented_keys_and_consistent_times():
    r = run("models", "predict", "--device", "m2-ultra-76", "--model", "llama-3.1-8b", "--quant", "q4_k_m",
            "--prompt-tokens", "1000", "--output-tokens", "200", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["prefill_tokens_per_s"] > data["decode_tokens_per_s"] > 0
    expected = 1000 / data["prefill_tokens_per_s"] + 200 / data["decode_tokens_per_s"]
    assert abs(data["seconds"] - expected) < 1e-6 * expected
    assert data["fits"] is True and data["load_s"] == 0


def test_predict_cold_on_an_instance_and_an_api_tier():
    cold = json.loads(run("models", "predict", "--device", "aws-g6.xlarge", "--model", "mistral-7b", "--cold", "--json").output)
    assert cold["target_kind"] == "instance" and cold["load_s"] > 0
    api = json.loads(run("models", "predict", "--device", "claude-sonnet-4.6", "--model", "llama-3.1-8b", "--json").output)
    assert api["target_kind"] == "api" and api["decode_tokens_per_s"] == catalog.offer("claude-sonnet-4.6").decode_tokens_per_s


def test_predict_table_and_bad_ids():
    r = run("models", "predict", "--device", "m4-max-40", "--model", "qwen2.5-32b", "--batch", "4")
    assert r.exit_code == 0 and "tokens/s" in r.output and "batch of 4" in r.output
    r = run("models", "predict", "--device", "m4-max-41", "--model", "qwen2.5-32b")
    assert r.exit_code == 2 and "m4-max-40" in r.output
    r = run("models", "predict", "--device", "m4-max-40", "--model", "gpt-oss-20b", "--quant", "q4_0")
    assert r.exit_code == 2 and "mxfp4" in r.output


def test_catalog_list_and_show():
    r = run("catalog", "list")
    assert r.exit_code == 0
    for item in ("m3-ultra-80", "llama-3.1-70b", "aws-trn1.2xlarge"):
        assert item in r.output
    r = run("catalog", "list", "--kind", "model")
    assert "gpt-oss-120b" in r.output and "m3-ultra-80" not in r.output
    r = run("catalog", "show", "dgx-spark", "--json")
    assert json.loads(r.output)["memory_bandwidth_gb_s"] == 273
    r = run("catalog", "show", "jetson-agx-orin-64")
    assert r.exit_code == 0 and "source" in r.output
    assert run("catalog", "show", "nope").exit_code == 2


def test_models_fleet_validates_files(tmp_path):
    r = run("models", "fleet", "office")
    assert r.exit_code == 0 and "studio-b" in r.output
    bad = tmp_path / "f.yaml"
    bad.write_text("name: f\nnodes:\n  - id: a\n    device: m4-10\n    memory_gb: 17\n    owner: x\n")
    r = run("models", "fleet", str(bad))
    assert r.exit_code == 2 and f"{bad}:5" in r.output.replace("\n", "") and "memory_gb" in r.output


def test_accuracy_report_prints_the_table():
    r = run("models", "accuracy")
    assert r.exit_code == 0 and "fit M1, predict M2" in r.output and "rtx-5090" in r.output


def test_fleet_and_output_defaults_come_from_settings(tmp_path):
    (tmp_path / ".heddle").mkdir()
    (tmp_path / ".heddle" / "config.yaml").write_text("fleet: small\n")
    r = runner.invoke(app, ["models", "fleet"], env={"HOME": str(tmp_path), "COLUMNS": "200"})
    assert r.exit_code == 0 and "fleet small" in r.output
    env = {"HOME": str(tmp_path), "HEDDLE_FLEET": "office", "HEDDLE_OUTPUT": "json"}
    assert "fleet office" in runner.invoke(app, ["models", "fleet"], env=env | {"COLUMNS": "200"}).output
    r = runner.invoke(app, ["models", "predict", "--device", "m4-10", "--model", "mistral-7b"], env=env)
    assert json.loads(r.output)["target"] == "m4-10"
