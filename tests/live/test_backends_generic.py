"""A machine the catalog does not list: the agent measures itself at start (bounded, cached),
reports the figures, and the control plane predicts the node as a generic device from them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from heddle.live import protocol as p
from heddle.live.agent.benchmark import measured_device
from heddle.live.backends.probes import detect_device
from heddle.models import catalog
from heddle.models.generic import REFERENCE_BURN_ITERATIONS_PER_S
from heddle.models.perf import llm_step, processor_seconds
from tests.live.conftest import REPO


@pytest.fixture
def unknown_agent(tmp_path):
    started = []

    def _spawn(url: str, node_id: str) -> subprocess.Popen:
        env = {**os.environ, "HEDDLE_CONFIG": str(tmp_path / "none.yaml"), "HEDDLE_DATA_DIR": str(tmp_path / "data")}
        process = subprocess.Popen([sys.executable, "-m", "heddle.cli.agent", "--nats", url, "--node-id", node_id,
                                    "--report-every", "0.5"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=(tmp_path / f"{node_id}.log").open("w"))
        started.append(process)
        return process

    yield _spawn
    for process in started:
        process.kill()
        process.wait()


@pytest.mark.skipif(detect_device().device is not None, reason="this machine is in the catalog")
async def test_an_agent_on_unknown_hardware_measures_itself_and_is_predicted_from_it(natsd, control, unknown_agent, tmp_path):
    unknown_agent(natsd.url, "box1")
    report = await control.next("capacity", lambda m: m.node_id == "box1")
    assert report.device is None and report.measured is not None and not report.measured.cached
    m = report.measured
    assert m.cpu_single_core_relative > 0 and m.memory_bandwidth_gb_s > 0 and m.cpu_gflops > 0
    assert m.cores == os.cpu_count() and m.duration_s > 0
    # one rule measures a core's speed: the agent's speed probe, reported in cpu too
    assert m.cpu_single_core_relative == report.cpu.speed_relative

    node = p.node_from_report(report)
    assert node.device.family == "generic" and node.device.source.startswith("measured")
    assert node.device.memory_bandwidth_gb_s == m.memory_bandwidth_gb_s
    step = llm_step(node.device, catalog.model("llama-3.1-8b"), "q4_0", 100, 50)
    assert 0 < step.seconds < float("inf")
    # the per-core speed means what a processor step's cpu_seconds means: burn at this rate
    assert processor_seconds(node.device, 1.0) == pytest.approx(
        REFERENCE_BURN_ITERATIONS_PER_S / (m.cpu_single_core_relative * REFERENCE_BURN_ITERATIONS_PER_S))

    unknown_agent(natsd.url, "box2")  # the same machine again: the cached figures, no new run
    again = await control.next("capacity", lambda m: m.node_id == "box2")
    assert again.measured.cached and again.measured.cpu_gflops == m.cpu_gflops
    assert again.measured.cpu_single_core_relative == again.cpu.speed_relative  # measured at each start


def test_the_cache_is_measured_again_for_another_machine_or_when_broken(tmp_path):
    def measure(chip: str, speed: float = 1.5):
        return measured_device(tmp_path, chip, speed, cores=2, memory_gb=8.0)

    assert not measure("chip-a").cached
    again = measure("chip-a", speed=0.75)
    assert again.cached and again.cpu_single_core_relative == 0.75  # the core's speed is never cached
    assert not measure("chip-b").cached  # another machine
    (tmp_path / "machine-benchmark.json").write_text("{not json")
    assert not measure("chip-b").cached


def test_a_report_without_device_or_figures_is_refused_naming_the_field():
    report_fields = {"sender": "a", "seq": 1, "sent_at": 0.0, "node_id": "n", "agent_id": "a", "hostname": "h",
                     "os": "linux", "arch": "x86_64", "chip": "?",
                     "memory": p.Memory(total_gb=8, free_gb=4, unified=False),
                     "cpu": p.Cpu(performance_cores=2, utilization=0.1), "owner": "o", "slots": 1, "free_slots": 1}
    with pytest.raises(p.ProtocolError, match="no catalog device, no measured figures"):
        p.node_from_report(p.CapacityReport(**report_fields))
    assert p.node_from_report(p.CapacityReport(**report_fields), "m1-8").device.id == "m1-8"
