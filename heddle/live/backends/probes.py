"""Which catalog device this machine is, from the tools each platform ships.

macOS: ``sysctl`` (chip name, memory, performance/efficiency cores), ``system_profiler
SPDisplaysDataType`` (GPU cores: the catalog's Apple devices are `<chip>-<gpu cores>`),
``pmset -g batt`` (power source, battery) and ``pmset -g therm`` (CPU speed limit). NVIDIA:
``nvidia-smi --query-gpu=... --format=csv,noheader,nounits``. Jetson: ``/etc/nv_tegra_release``
(the L4T release) and the device-tree model. Parsers take the tools' text, so they are
tested on captured outputs; `detect_device()` runs whichever tools this machine has. A
machine the catalog does not list gets ``device=None`` with the reason, never a near guess.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from heddle.models import catalog

__all__ = [
    "NVIDIA_QUERY",
    "Battery",
    "GpuRow",
    "ProbedDevice",
    "apple_device",
    "detect_device",
    "jetson_device",
    "nvidia_device",
    "parse_gpu_cores",
    "parse_nvidia_smi",
    "parse_pmset_batt",
    "parse_pmset_therm",
    "parse_sysctl",
    "parse_tegra_release",
]

NVIDIA_QUERY = ("name", "memory.total", "memory.used", "utilization.gpu", "temperature.gpu",
                "power.draw")
"""The ``--query-gpu`` fields `parse_nvidia_smi` reads, in this order."""
TOOL_TIMEOUT_S = 10.0
"""system_profiler takes 1-3 s on a Mac; a tool slower than this is treated as absent."""
_GIB = 1024**3


@dataclass(frozen=True, slots=True)
class ProbedDevice:
    """The catalog device id (None: not in the catalog) and what it was read from."""

    device: str | None
    chip: str
    reason: str  # which facts named the device, or why none was named


# --- macOS --------------------------------------------------------------------------------


def parse_sysctl(text: str) -> dict[str, str]:
    """``sysctl name1 name2 ...`` output ("name: value" lines) as a mapping."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out


def parse_gpu_cores(text: str) -> int | None:
    """``Total Number of Cores`` of the first GPU in ``system_profiler SPDisplaysDataType``."""
    found = re.search(r"^\s*Total Number of Cores:\s*(\d+)\s*$", text, re.MULTILINE)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class Battery:
    on_battery: bool
    percent: float | None  # None: no battery (a desktop)
    charging: bool | None


def parse_pmset_batt(text: str) -> Battery:
    """``pmset -g batt``: "Now drawing from 'Battery Power'" and the battery line, if any."""
    source = re.search(r"drawing from '([^']+)'", text)
    on_battery = bool(source and source.group(1) == "Battery Power")
    line = re.search(r"(\d+)%;\s*([^;]+);", text)
    if not line:
        return Battery(on_battery, None, None)
    state = line.group(2).strip().lower()
    return Battery(on_battery, float(line.group(1)), state in ("charging", "finishing charge"))


def parse_pmset_therm(text: str) -> int | None:
    """``CPU_Speed_Limit`` in ``pmset -g therm`` (100: not throttled); None when not recorded."""
    found = re.search(r"CPU_Speed_Limit\s*=\s*(\d+)", text)
    return int(found.group(1)) if found else None


def apple_device(chip: str, gpu_cores: int | None) -> ProbedDevice:
    """"Apple M2 Ultra" + 76 GPU cores -> m2-ultra-76, when the catalog lists that variant."""
    name = chip.lower().removeprefix("apple").strip()
    chip_id = re.sub(r"\s+", "-", name)
    if not re.fullmatch(r"m\d+(-(pro|max|ultra))?", chip_id):
        return ProbedDevice(None, chip, f"{chip!r} is not an Apple M-series chip")
    if gpu_cores is None:
        return ProbedDevice(None, chip, "the GPU core count is unknown (system_profiler)")
    device = f"{chip_id}-{gpu_cores}"
    if device not in catalog.devices():
        return ProbedDevice(None, chip, f"{chip} with {gpu_cores} GPU cores is not in the catalog")
    return ProbedDevice(device, chip, f"{chip}, {gpu_cores} GPU cores (sysctl, system_profiler)")


# --- NVIDIA -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuRow:
    name: str
    memory_total_mib: float | None
    memory_used_mib: float | None
    utilization_pct: float | None
    temperature_c: float | None
    power_w: float | None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]" (e.g. memory on unified-memory GB10)
        return None


def parse_nvidia_smi(text: str) -> list[GpuRow]:
    """``nvidia-smi --query-gpu=<NVIDIA_QUERY> --format=csv,noheader,nounits``: one row per GPU."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(NVIDIA_QUERY):
            raise ValueError(f"nvidia-smi: expected {len(NVIDIA_QUERY)} fields "
                             f"({','.join(NVIDIA_QUERY)}), got {line!r}")
        rows.append(GpuRow(cells[0], *(_number(c) for c in cells[1:])))
    return rows


_NVIDIA_DEVICES = (("geforce rtx 4090", "rtx-4090"), ("geforce rtx 5090", "rtx-5090"),
                   ("gb10", "dgx-spark"))


def nvidia_device(rows: list[GpuRow]) -> ProbedDevice:
    """The catalog's single-GPU NVIDIA machines (RTX 4090 / 5090 desktops, DGX Spark)."""
    if not rows:
        return ProbedDevice(None, "", "nvidia-smi lists no GPU")
    names = sorted({r.name for r in rows})
    chip = " + ".join(names)
    if len(rows) > 1:
        return ProbedDevice(None, chip, f"{len(rows)} GPUs: the catalog lists single-GPU machines")
    for label, device in _NVIDIA_DEVICES:
        if label in rows[0].name.lower():
            return ProbedDevice(device, chip, f"{rows[0].name} (nvidia-smi)")
    return ProbedDevice(None, chip, f"{rows[0].name} is not in the catalog")


# --- Jetson -------------------------------------------------------------------------------


def parse_tegra_release(text: str) -> tuple[int, float] | None:
    """(major, revision) of ``# R36 (release), REVISION: 4.0, ...``; None if not that format."""
    found = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)?)", text)
    return (int(found.group(1)), float(found.group(2))) if found else None


def jetson_device(model: str, release: tuple[int, float] | None, memory_gb: float) -> ProbedDevice:
    """From the device-tree model ("NVIDIA Jetson AGX Orin Developer Kit"), the L4T release
    and the memory: the AGX Orin 64 GB, and the Orin Nano 8 GB in Super mode (its model
    says "Super", or L4T R36.4 or later, which brought the Super power modes)."""
    name = model.strip("\x00 \n")
    low = name.lower()
    if "agx orin" in low:
        if memory_gb > 48:  # 64 GB less the carve-outs; the 32 GB module is not in the catalog
            return ProbedDevice("jetson-agx-orin-64", name, f"{name}, {memory_gb:.0f} GB")
        return ProbedDevice(None, name, f"{name} with {memory_gb:.0f} GB is not in the catalog")
    if "orin nano" in low:
        super_mode = "super" in low or (release is not None and release >= (36, 4.0))
        if memory_gb > 6 and super_mode:
            return ProbedDevice("jetson-orin-nano-super", name, f"{name}, {memory_gb:.0f} GB, "
                                "Super mode (L4T R36.4+)")
        return ProbedDevice(None, name, f"{name} ({memory_gb:.0f} GB, L4T {release}) is not "
                            "in the catalog (only the 8 GB in Super mode is)")
    return ProbedDevice(None, name, f"{name!r} is not a catalogued Jetson")


# --- this machine -------------------------------------------------------------------------


def _run(*argv: str) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def detect_device(memory_bytes: int | None = None) -> ProbedDevice:
    """Run this machine's tools (whichever exist) and name its catalog device, or say why not."""
    if platform.system() == "Darwin":
        facts = parse_sysctl(_run("sysctl", "machdep.cpu.brand_string") or "")
        chip = facts.get("machdep.cpu.brand_string", "")
        return apple_device(chip, parse_gpu_cores(_run("system_profiler", "SPDisplaysDataType") or ""))
    tegra, model = Path("/etc/nv_tegra_release"), Path("/proc/device-tree/model")
    if tegra.is_file() and model.is_file():
        if memory_bytes is None:
            import psutil

            memory_bytes = psutil.virtual_memory().total
        return jetson_device(model.read_text(errors="replace"),
                             parse_tegra_release(tegra.read_text(errors="replace")),
                             memory_bytes / _GIB)
    smi = _run("nvidia-smi", f"--query-gpu={','.join(NVIDIA_QUERY)}", "--format=csv,noheader,nounits")
    if smi is not None:
        try:
            return nvidia_device(parse_nvidia_smi(smi))
        except ValueError as exc:
            return ProbedDevice(None, "", str(exc))
    return ProbedDevice(None, platform.processor() or platform.machine(),
                        "no Apple chip, Jetson or NVIDIA GPU found")
