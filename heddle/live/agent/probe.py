"""What the machine has right now, from psutil and the platform module.

Every probe tolerates missing data: Linux VMs report `cpu_freq().max` as 0, no battery and no
temperatures; macOS without root gives no GPU utilisation. Missing values become the
protocol's "unknown" (None) or a safe default, never an exception. On macOS, power and
thermal state come from ``pmset -g batt`` and ``pmset -g therm`` (psutil sees neither the
CPU speed limit nor, on some models, the battery); elsewhere from psutil.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from heddle.live.protocol import Cpu, Gpu, Memory, NeuralEngine, Power, Thermal
from heddle.models.ids import PowerSource, ThermalState

if TYPE_CHECKING:
    from heddle.live.agent.speed import SpeedMeter

__all__ = ["MachineSample", "Probe", "guess_device", "mac_power", "mac_thermal", "run_pmset"]

GIB = 1024**3
HOT_FRACTION_OF_CRITICAL = 0.9
"""A sensor within 10% of its critical temperature counts as throttling (kernel trip points
start throttling before the critical point)."""
SPEED_LIMIT_FAIR, SPEED_LIMIT_SERIOUS = 80, 50
"""``pmset -g therm`` CPU_Speed_Limit (percent of full speed) at or above which the state is
fair / serious; below 50 critical. An estimate: macOS caps the CPU speed step by step as it
heats, and half speed is where work visibly stalls (thermalState itself needs Cocoa)."""


@dataclass(slots=True)
class MachineSample:
    """One reading of the machine (the capacity report's hardware part)."""

    hostname: str
    os: str
    arch: str
    chip: str
    memory: Memory
    cpu: Cpu
    gpu: Gpu | None
    neural_engine: NeuralEngine
    thermal: Thermal
    power: Power


def _sysctl(name: str) -> str | None:
    """A macOS sysctl value, or None (not macOS, no such key, sysctl missing)."""
    if platform.system() != "Darwin":
        return None
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _core_split(physical: int) -> tuple[int, int]:
    """(performance, efficiency) cores: macOS names its core types as perf levels 0 and 1;
    elsewhere every core counts as a performance core."""
    levels = [_sysctl(f"hw.perflevel{i}.physicalcpu") for i in (0, 1)]
    if levels[0] and levels[0].isdigit():
        efficiency = int(levels[1]) if levels[1] and levels[1].isdigit() else 0
        return int(levels[0]), efficiency
    return physical, 0


def _chip_name() -> str:
    """Marketing name of the CPU ("Apple M2 Ultra", "AMD EPYC"); "unknown" if not found."""
    brand = _sysctl("machdep.cpu.brand_string")
    if brand:
        return brand
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.partition(":")[2].strip() or "unknown"
    except OSError:
        pass
    return platform.processor() or "unknown"


def guess_device(chip: str) -> str | None:
    """The catalog device id a chip name points to, when it is unambiguous; else None.

    Apple chip names ("Apple M2 Ultra") do not say the GPU-core variant, so the smallest
    variant of that chip is taken: the scheduler then under- rather than over-estimates.
    """
    from heddle.models import catalog

    name = chip.lower().removeprefix("apple").strip()
    if not name.startswith("m"):
        return None
    candidates = [
        d for d in catalog.devices().values()
        if d.vendor == "apple" and d.name.lower().removeprefix("apple ").split(" (")[0] == name
    ]
    return min(candidates, key=lambda d: d.gpu_cores).id if candidates else None


def _thermal() -> Thermal:
    read = getattr(psutil, "sensors_temperatures", None)
    try:
        sensors = read() if read else {}
    except (OSError, RuntimeError):
        sensors = {}
    hot = [
        t for entries in (sensors or {}).values() for t in entries
        if t.critical and t.current >= HOT_FRACTION_OF_CRITICAL * t.critical
    ]
    if not hot:
        return Thermal()
    critical = any(t.current >= t.critical for t in hot)
    return Thermal(state=ThermalState.CRITICAL if critical else ThermalState.SERIOUS, throttling=True)


def mac_thermal(therm: str) -> Thermal:
    """``pmset -g therm`` as the report's thermal part: a CPU speed limit below 100% is throttling."""
    from heddle.live.backends.probes import parse_pmset_therm

    limit = parse_pmset_therm(therm)
    if limit is None or limit >= 100:
        return Thermal()
    state = (ThermalState.FAIR if limit >= SPEED_LIMIT_FAIR else
             ThermalState.SERIOUS if limit >= SPEED_LIMIT_SERIOUS else ThermalState.CRITICAL)
    return Thermal(state=state, throttling=True)


def mac_power(batt: str) -> Power:
    """``pmset -g batt`` as the report's power part (a desktop Mac: AC, no battery level)."""
    from heddle.live.backends.probes import parse_pmset_batt

    battery = parse_pmset_batt(batt)
    level = None if battery.percent is None else max(0.0, min(1.0, battery.percent / 100))
    return Power(source=PowerSource.BATTERY if battery.on_battery else PowerSource.AC,
                 battery_level=level)


def run_pmset(what: str) -> str | None:
    """``pmset -g <what>`` output, or None (no pmset, an error, or slower than 2 s)."""
    try:
        out = subprocess.run(["pmset", "-g", what], capture_output=True, text=True, timeout=2,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _power() -> Power:
    try:
        battery = psutil.sensors_battery()
    except (OSError, RuntimeError, AttributeError):
        battery = None
    if battery is None:
        return Power()
    source = PowerSource.AC if battery.power_plugged in (True, None) else PowerSource.BATTERY
    return Power(source=source, battery_level=max(0.0, min(1.0, battery.percent / 100)))


class Probe:
    """Reads the machine. The static facts are read once; `sample()` is cheap (~0.1 ms; on
    macOS two pmset runs, a few ms). ``pmset`` runs ``pmset -g <what>``: by default the real
    tool on macOS and none elsewhere (tests pass recorded outputs)."""

    def __init__(self, pmset: Callable[[str], str | None] | None = None, *,
                 measure_speed: bool = False, cpu_limit: float | None = None) -> None:
        self._static = (socket.gethostname(), platform.system().lower(), platform.machine(), _chip_name())
        self._pmset = pmset if pmset is not None else (run_pmset if self._static[1] == "darwin" else None)
        logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        physical = psutil.cpu_count(logical=False) or logical
        self._apple = self._static[1] == "darwin" and self._static[2] == "arm64"
        self._cores = _core_split(physical)
        self.speed: SpeedMeter | None = None  # the agent's burn steps keep it current
        if measure_speed:
            from heddle.live.agent.speed import SpeedMeter, measure_speed_relative

            self.speed = SpeedMeter(probed=measure_speed_relative(cpu_limit=cpu_limit))
        psutil.cpu_percent(interval=None)  # primes the counter: the next call measures since now

    @property
    def chip(self) -> str:
        return self._static[3]

    @property
    def speed_relative(self) -> float | None:
        """One core's speed measured at start (heddle.live.agent.speed), or None if not measured."""
        return self.speed.probed if self.speed is not None else None

    def sample(self) -> MachineSample:
        hostname, os_name, arch, chip = self._static
        vm = psutil.virtual_memory()
        utilization = max(0.0, min(1.0, psutil.cpu_percent(interval=None) / 100))
        return MachineSample(
            hostname=hostname,
            os=os_name,
            arch=arch,
            chip=chip,
            memory=Memory(total_gb=vm.total / GIB, free_gb=vm.available / GIB, unified=self._apple),
            cpu=Cpu(performance_cores=self._cores[0], efficiency_cores=self._cores[1],
                    utilization=utilization, **self._speed_fields()),
            gpu=Gpu(type="apple") if self._apple else None,
            neural_engine=NeuralEngine(available=self._apple),
            thermal=self._thermal(),
            power=self._power(),
        )

    def current_cpu(self, cpu: Cpu) -> Cpu:
        """`cpu` (a sample's) with the speed meter's figures as of now: a report between two
        samples carries the burn steps that ended since, so the control plane's readings of
        a node's speed over time follow its steps to CHANGE_GAP_S, not to the sample interval."""
        return cpu if self.speed is None else cpu.model_copy(update=self._speed_fields())

    def _speed_fields(self) -> dict:
        meter = self.speed
        if meter is None:
            return {}
        return {"speed_relative": meter.current(), "burn_iterations": meter.iterations,
                "burn_seconds": round(meter.seconds, 6)}

    def _thermal(self) -> Thermal:
        therm = self._pmset("therm") if self._pmset else None
        return mac_thermal(therm) if therm is not None else _thermal()

    def _power(self) -> Power:
        batt = self._pmset("batt") if self._pmset else None
        return mac_power(batt) if batt is not None else _power()
