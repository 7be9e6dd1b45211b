"""Machine probes: parsers on outputs written from the tools' documented formats, mapped to
catalog device ids; the probe of this (Linux) machine runs for real."""

from __future__ import annotations

import pytest

from heddle.live.backends.probes import (
    apple_device,
    detect_device,
    jetson_device,
    nvidia_device,
    parse_gpu_cores,
    parse_nvidia_smi,
    parse_pmset_batt,
    parse_pmset_therm,
    parse_sysctl,
    parse_tegra_release,
)
from heddle.models import catalog

SYSCTL_M2_ULTRA = """\
machdep.cpu.brand_string: Apple M2 Ultra
hw.memsize: 206158430208
hw.perflevel0.physicalcpu: 16
hw.perflevel1.physicalcpu: 8
"""

SYSTEM_PROFILER_M2_ULTRA = """\
Graphics/Displays:

    Apple M2 Ultra:

      Chipset Model: Apple M2 Ultra
      Type: GPU
      Bus: Built-In
      Total Number of Cores: 76
      Vendor: Apple (0x106b)
      Metal Support: Metal 3
      Displays:
        DELL U2720Q:
          Resolution: 3840 x 2160 (2160p/4K UHD 1 - Ultra High Definition)
          UI Looks like: 1920 x 1080 @ 60.00Hz
          Main Display: Yes
"""

PMSET_BATT_LAPTOP = """\
Now drawing from 'Battery Power'
 -InternalBattery-0 (id=4653155)\t82%; discharging; 5:27 remaining present: true
"""
PMSET_BATT_CHARGING = """\
Now drawing from 'AC Power'
 -InternalBattery-0 (id=4653155)\t64%; charging; 1:02 remaining present: true
"""
PMSET_BATT_DESKTOP = "Now drawing from 'AC Power'\n"
PMSET_THERM_QUIET = """\
Note: No thermal warning level has been recorded
Note: No performance warning level has been recorded
Note: No CPU power status has been recorded
"""
PMSET_THERM_HOT = """\
Note: No thermal warning level has been recorded
Note: No performance warning level has been recorded
2026-12-06 10:02:11 +0000 CPU Power notify
\tCPU_Scheduler_Limit \t= 100
\tCPU_Available_CPUs \t= 10
\tCPU_Speed_Limit \t= 72
"""

NVIDIA_4090 = "NVIDIA GeForce RTX 4090, 24564, 1024, 3, 41, 28.50\n"
NVIDIA_GB10 = "NVIDIA GB10, [N/A], [N/A], 0, 39, 11.23\n"
NVIDIA_TWO = "NVIDIA GeForce RTX 4090, 24564, 1, 0, 35, 20.1\nNVIDIA GeForce RTX 4090, 24564, 1, 0, 36, 19.8\n"
NVIDIA_A4000 = "NVIDIA RTX A4000, 16376, 0, 0, 30, 9.80\n"

TEGRA_R36_4 = ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
               "DATE: Fri Sep 13 04:36:44 UTC 2024\n# KERNEL_VARIANT: oot\n")
TEGRA_R35_4 = ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
               "DATE: Tue Aug  1 19:57:35 UTC 2023\n")


def test_mac_studio_m2_ultra_is_its_76_core_variant():
    facts = parse_sysctl(SYSCTL_M2_ULTRA)
    assert facts["hw.memsize"] == "206158430208" and facts["hw.perflevel1.physicalcpu"] == "8"
    probed = apple_device(facts["machdep.cpu.brand_string"], parse_gpu_cores(SYSTEM_PROFILER_M2_ULTRA))
    assert probed.device == "m2-ultra-76"
    assert catalog.device(probed.device).gpu_cores == 76


@pytest.mark.parametrize(("chip", "cores", "device"), [
    ("Apple M1", 8, "m1-8"), ("Apple M4 Pro", 20, "m4-pro-20"), ("Apple M3 Max", 40, "m3-max-40"),
    ("Apple M2 Ultra", 72, None),  # no such variant: not the nearest one
    ("Apple M2 Ultra", None, None), ("Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", 0, None),
])
def test_apple_chips_map_to_catalog_variants_or_to_none(chip, cores, device):
    probed = apple_device(chip, cores)
    assert probed.device == device and probed.reason


def test_pmset_battery_and_thermal():
    laptop = parse_pmset_batt(PMSET_BATT_LAPTOP)
    assert (laptop.on_battery, laptop.percent, laptop.charging) == (True, 82.0, False)
    charging = parse_pmset_batt(PMSET_BATT_CHARGING)
    assert (charging.on_battery, charging.percent, charging.charging) == (False, 64.0, True)
    desktop = parse_pmset_batt(PMSET_BATT_DESKTOP)
    assert (desktop.on_battery, desktop.percent) == (False, None)
    assert parse_pmset_therm(PMSET_THERM_QUIET) is None
    assert parse_pmset_therm(PMSET_THERM_HOT) == 72


def test_nvidia_smi_rows_and_devices():
    (row,) = parse_nvidia_smi(NVIDIA_4090)
    assert (row.memory_total_mib, row.temperature_c, row.power_w) == (24564.0, 41.0, 28.5)
    assert nvidia_device([row]).device == "rtx-4090"
    (spark,) = parse_nvidia_smi(NVIDIA_GB10)
    assert spark.memory_total_mib is None  # unified memory: nvidia-smi says [N/A]
    assert nvidia_device([spark]).device == "dgx-spark"
    assert nvidia_device(parse_nvidia_smi(NVIDIA_TWO)).device is None
    unknown = nvidia_device(parse_nvidia_smi(NVIDIA_A4000))
    assert unknown.device is None and "not in the catalog" in unknown.reason
    with pytest.raises(ValueError, match="expected 6 fields"):
        parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564\n")


def test_jetsons():
    assert parse_tegra_release(TEGRA_R36_4) == (36, 4.0)
    assert parse_tegra_release("not a release file") is None
    agx = jetson_device("NVIDIA Jetson AGX Orin Developer Kit\x00", parse_tegra_release(TEGRA_R36_4), 61.4)
    assert agx.device == "jetson-agx-orin-64"
    assert jetson_device("NVIDIA Jetson AGX Orin Developer Kit\x00", (36, 4.0), 30.0).device is None
    nano = "NVIDIA Jetson Orin Nano Developer Kit\x00"
    assert jetson_device(nano, parse_tegra_release(TEGRA_R36_4), 7.4).device == "jetson-orin-nano-super"
    # an older L4T has no Super power modes: the catalog's figures do not apply
    assert jetson_device(nano, parse_tegra_release(TEGRA_R35_4), 7.4).device is None
    assert jetson_device("NVIDIA Jetson Xavier NX Developer Kit", (35, 4.1), 7.6).device is None


def test_this_machine_is_probed_for_real():
    probed = detect_device()
    assert probed.device is None or probed.device in catalog.devices()
    assert probed.reason


def test_the_capacity_report_of_a_mac_reads_pmset():
    from heddle.live.agent.probe import Probe, mac_power, mac_thermal
    from heddle.models.ids import PowerSource, ThermalState

    recorded = {"batt": PMSET_BATT_LAPTOP, "therm": PMSET_THERM_HOT}
    sample = Probe(pmset=recorded.get).sample()
    assert sample.power.source is PowerSource.BATTERY and sample.power.battery_level == pytest.approx(0.82)
    assert sample.thermal.throttling and sample.thermal.state is ThermalState.SERIOUS  # 72% speed

    quiet = Probe(pmset={"batt": PMSET_BATT_DESKTOP, "therm": PMSET_THERM_QUIET}.get).sample()
    assert (quiet.power.source, quiet.power.battery_level) == (PowerSource.AC, None)
    assert not quiet.thermal.throttling and quiet.thermal.state is ThermalState.NOMINAL
    assert mac_power(PMSET_BATT_CHARGING).source is PowerSource.AC
    for limit, state in ((100, ThermalState.NOMINAL), (90, ThermalState.FAIR), (30, ThermalState.CRITICAL)):
        assert mac_thermal(PMSET_THERM_HOT.replace("= 72", f"= {limit}")).state is state
    # pmset failing (None) falls back to psutil's view rather than reporting nothing
    assert Probe(pmset=lambda what: None).sample().power.source in (PowerSource.AC, PowerSource.BATTERY)
