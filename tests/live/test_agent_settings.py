"""The agent's settings (CLI > env > file > defaults), its CLI errors, and its probes on a
machine that reports little (no battery, no temperatures, unknown chip)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import psutil
import pytest
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.config import load_settings
from heddle.live.agent import probe as probe_mod
from heddle.live.agent.settings import agent_settings
from heddle.models.ids import PowerSource, ThermalState


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEDDLE_CONFIG", str(tmp_path / "config.yaml"))
    for key in [k for k in os.environ if k.startswith("HEDDLE_") and k != "HEDDLE_CONFIG"]:
        monkeypatch.delenv(key)
    return tmp_path


def test_cli_beats_env_beats_file_beats_defaults(home, monkeypatch):
    (home / "config.yaml").write_text(
        "slots: 3\nowner: ana\ntrust: [bo, cy]\nlabels: {room: office}\nreport_every_s: 5\n")
    s = agent_settings(load_settings())
    assert (s.slots, s.owner, s.trusted_owners, s.labels, s.report_every_s) == (
        3, "ana", ("bo", "cy"), {"room": "office"}, 5.0)
    monkeypatch.setenv("HEDDLE_SLOTS", "4")
    monkeypatch.setenv("HEDDLE_TRUST", "dee")
    assert agent_settings(load_settings()).slots == 4
    s = agent_settings(load_settings({"slots": 5, "labels": "room=lab,gpu=yes", "node_id": "n-1"}))
    assert (s.slots, s.trusted_owners, s.labels, s.node_id) == (5, ("dee",), {"room": "lab", "gpu": "yes"}, "n-1")
    assert s.local_queue == 5 and s.sender == "n-1"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--slots", "0"], "--slots"),
        (["--node-id", "has.dots"], "--node-id"),
        (["--device", "m9-turbo"], "unknown device id 'm9-turbo'"),
        (["--labels", "no-equals-sign"], "labels: expected key=value"),
        (["--report-every", "-1"], "--report-every"),
    ],
)
def test_bad_agent_options_are_refused_naming_the_option(home, args, expected):
    result = CliRunner().invoke(app, ["agent", *args])
    assert result.exit_code == 2
    assert expected in " ".join(result.output.split()), result.output


def test_probe_tolerates_a_machine_that_reports_little(monkeypatch):
    monkeypatch.setattr(psutil, "sensors_battery", lambda: None)
    monkeypatch.setattr(psutil, "sensors_temperatures", dict, raising=False)
    monkeypatch.setattr(psutil, "cpu_freq", lambda: SimpleNamespace(current=0.0, min=0.0, max=0.0))
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: None)
    sample = probe_mod.Probe().sample()
    assert sample.power.source is PowerSource.AC and sample.power.battery_level is None
    assert sample.thermal.state is ThermalState.NOMINAL and not sample.thermal.throttling
    assert sample.cpu.performance_cores >= 1 and 0 <= sample.cpu.utilization <= 1
    assert sample.memory.total_gb > 0


def test_probe_reads_battery_and_hot_sensors(monkeypatch):
    monkeypatch.setattr(psutil, "sensors_battery",
                        lambda: SimpleNamespace(percent=42.0, power_plugged=False, secsleft=600))
    hot = SimpleNamespace(label="cpu", current=99.0, high=90.0, critical=100.0)
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: {"coretemp": [hot]}, raising=False)
    sample = probe_mod.Probe().sample()
    assert (sample.power.source, sample.power.battery_level) == (PowerSource.BATTERY, 0.42)
    assert sample.thermal.throttling and sample.thermal.state is ThermalState.SERIOUS


@pytest.mark.parametrize(
    ("chip", "device"),
    [("Apple M2 Ultra", "m2-ultra-60"), ("Apple M1", "m1-7"), ("Apple M4 Pro", "m4-pro-16"),
     ("AMD EPYC", None), ("unknown", None)],
)
def test_device_guessed_from_the_chip_name_takes_the_smallest_variant(chip, device):
    assert probe_mod.guess_device(chip) == device


def test_probe_reads_apple_core_types_from_sysctl(monkeypatch):
    answers = {"machdep.cpu.brand_string": "Apple M2 Pro", "hw.perflevel0.physicalcpu": "8",
               "hw.perflevel1.physicalcpu": "4"}

    def sysctl(args, **kwargs):
        value = answers.get(args[-1])
        return SimpleNamespace(stdout=f"{value}\n" if value else "", returncode=0 if value else 1)

    monkeypatch.setattr(probe_mod.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(probe_mod.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(probe_mod.subprocess, "run", sysctl)
    sample = probe_mod.Probe().sample()
    assert (sample.chip, sample.os, sample.memory.unified) == ("Apple M2 Pro", "darwin", True)
    assert (sample.cpu.performance_cores, sample.cpu.efficiency_cores) == (8, 4)
    assert sample.gpu is not None and sample.gpu.type == "apple" and sample.neural_engine.available
    assert probe_mod.guess_device(sample.chip) == "m2-pro-16"
