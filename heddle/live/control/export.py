"""The live fleet as fleet YAML (`heddle fleet export`), and nodes at their measured speed.

Every node the control plane knows and has not lost or seen leave is written as the fleet
file of docs/models.md, which `heddle sim` and `heddle twin check` read unchanged: its probed
catalog device, memory (the catalog size nearest above what the machine reports: a fleet
file names sizes the device is sold with), slots, owner, trusted owners, labels, the
features its backends run (heddle.live.features: the twin keeps tool calls off an MLX Mac
too), and the per-core speed its agent measured (`cpu_speed_relative`): over a window's burn steps when one
is asked for (`heddle fleet export --since`), else the agent's latest figure; over a window
also that speed over time (`cpu_speed_profile`: a machine shared with other work has slow
spells of seconds, which the twin replays: heddle.sim.fidelity); and how its steps ran
around the twin's rule over that window, as the shadow predictions measured them
(`service_cv`, `service_quantiles`, `dispatch_s`: heddle.live.control.shadow).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from heddle.live.control.shadow import Measured
from heddle.live.protocol import CapacityReport
from heddle.models import Node

__all__ = ["LIVE_FLEET_NAME", "fleet_document", "measured_node", "memory_option_gb"]

LIVE_FLEET_NAME = "live"
"""Name of the exported fleet (a fleet file's ``name``)."""


def measured_node(node: Node, report: CapacityReport) -> Node:
    """The node with its device's per-core speed replaced by the one its agent measured (as
    `heddle.models.fleet` builds a node whose YAML sets ``cpu_speed_relative``)."""
    speed = report.cpu.speed_relative
    if speed is None or speed == node.device.cpu_single_core_relative:
        return node
    return replace(node, device=replace(node.device, cpu_single_core_relative=speed))


def memory_option_gb(options: tuple[float, ...], reported_gb: float) -> float:
    """The smallest size the device is sold with that holds what the machine reports (the OS
    reports a little less than is installed); the largest if it reports more than any."""
    ordered = sorted(options)
    at = bisect.bisect_left(ordered, reported_gb - 1e-9)
    return float(ordered[min(at, len(ordered) - 1)])


def fleet_document(nodes: list[tuple[Node, CapacityReport]], speeds: Mapping[str, float] | None = None,
                   spreads: Mapping[str, Measured] | None = None,
                   profiles: Mapping[str, list[tuple[float, float]]] | None = None) -> dict[str, Any]:
    """The fleet file (as plain data, ready for YAML) of these nodes, in the order given, each
    at its measured core speed: from `speeds` (node -> speed over a window) when it is there,
    else the one its last report carried; with `spreads` (node -> what `Shadow.measured` found
    of its steps: the speed and its profile are then its steps' started back to back, over
    `warm`) and `profiles` (node -> [(from Unix s, speed)], the speed over time:
    `Recorder.speed_profiles_since`) where a node has them."""
    speeds, spreads, profiles = speeds or {}, spreads or {}, profiles or {}
    out = []
    for node, report in nodes:
        memory = memory_option_gb(node.device.memory_options_gb, node.memory_gb)
        row: dict[str, Any] = {
            "id": str(node.id),
            "device": node.device.id,
            "memory_gb": int(memory) if memory.is_integer() else memory,
            "owner": str(node.owner),
        }
        if node.trusted_owners:
            row["trusted_owners"] = sorted(str(o) for o in node.trusted_owners)
        if node.labels:
            row["labels"] = dict(sorted(node.labels.items()))
        if node.power_source.value != "ac":
            row["power_source"] = node.power_source.value
        row["slots"] = node.slots
        if 0 < node.reserved_memory_gb < memory:
            row["reserved_memory_gb"] = round(node.reserved_memory_gb, 3)
        if node.features is not None:  # what its backends run: the twin places by it too
            row["features"] = sorted(node.features)
        if node.installed is not None:  # the models its servers have: the twin places by them too
            row["installed"] = sorted(f"{m}:{q}" for m, q in node.installed)
        measured = spreads.get(str(node.id))
        # a node whose steps started idle took longer (wake_s): its speed is its warm steps'
        warm = measured.warm if measured is not None else 1.0
        speed = speeds.get(str(node.id), report.cpu.speed_relative)
        if speed is not None:
            row["cpu_speed_relative"] = round(speed / warm, 4)
        if profiles.get(str(node.id)):
            row["cpu_speed_profile"] = [[round(t, 3), round(v / warm, 4)] for t, v in profiles[str(node.id)]]
        if measured is not None:
            row["service_cv"], row["dispatch_s"] = round(measured.service_cv, 4), round(measured.dispatch_s, 5)
            if measured.service_quantiles:
                row["service_quantiles"] = [round(q, 4) for q in measured.service_quantiles]
            if measured.idle_dispatch_s is not None:
                row["idle_dispatch_s"] = round(measured.idle_dispatch_s, 5)
            if measured.wake_s > 0:
                row["wake_s"] = round(measured.wake_s, 5)
        out.append(row)
    return {"name": LIVE_FLEET_NAME, "nodes": out}
