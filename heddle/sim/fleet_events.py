"""Applies a scenario's fleet events to a running twin at their simulated times.

A node that leaves or fails loses its memory and its work: running tasks are interrupted
(their partial service counts toward utilization and energy) and, with the tasks queued on
it, reported to the scheduling core as lost attempts (each counted as a retry; the core
offers them again or fails them after too many). Every event then tells the core what
changed (a node joined, left, or changed status, power, thermal state or speed), and the
core re-offers waiting work; a `pace` event changes only how fast the node's CPU runs its
processor steps (the scheduler does not see it, as a live control plane does not see a
machine's other work).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from heddle.models import Fleet, Node, NodeId, NodeStatus, OwnerId, PowerSource
from heddle.sim.errors import ScenarioError
from heddle.sim.scenario import Action, FleetEvent, Scenario

if TYPE_CHECKING:
    from heddle.sim.engine import Twin

__all__ = ["FleetDynamics"]


class FleetDynamics:
    """Schedules the timeline of one scenario on one twin."""

    def __init__(self, scenario: Scenario, fleet: Fleet, end_s: float, rng: np.random.Generator,
                 origin: str = "scenario"):
        scenario.check_against(fleet, origin)
        self.scenario = scenario
        self.origin = origin
        self.timeline = scenario.timeline(fleet, end_s, rng)
        self.applied: list[tuple[float, str, str]] = []  # (time, node, action) for the report
        self.twin: Twin | None = None

    def attach(self, twin: Twin) -> None:
        self.twin = twin
        for name in self.scenario.absent_at_start:
            rt = twin.target_by_name[name]
            rt.depart(0.0)
        for ev in self.timeline:
            t = twin.env.timeout(ev.at_s, ev)
            t.callbacks.append(self._fire)

    def _fire(self, simpy_event) -> None:
        ev: FleetEvent = simpy_event.value
        twin = self.twin
        assert twin is not None
        now = twin.env.now
        rt = twin.target_by_name.get(ev.node)
        if rt is None:
            if ev.action is not Action.JOIN or ev.device is None:
                raise ScenarioError(f"{self.origin}: node {ev.node!r} does not exist at t={ev.at_s:g} s")
            rt = twin.add_node(self._new_node(ev), present=False)
            twin.state.fleet = replace(twin.state.fleet, nodes=twin.state.fleet.nodes + (rt.node,))
        ns = rt.ns
        action = ev.action
        core = twin.core
        if action is Action.PACE:  # the machine, not the scheduler's view of it: nothing to publish
            rt.pace = float(ev.speed_factor)
            self.applied.append((now, ev.node, action.value))
            return
        if action is Action.JOIN:
            rt.arrive(now)
        elif action in (Action.LEAVE, Action.FAIL):
            if rt.present:
                self._evacuate(rt, "failed" if action is Action.FAIL else "left", now)
        elif action is Action.DRAIN:
            if rt.present:
                ns.status = NodeStatus.DRAINING
        elif action is Action.BATTERY:
            ns.power_source = PowerSource.BATTERY
        elif action is Action.AC:
            ns.power_source = PowerSource.AC
        elif action is Action.THROTTLE:
            ns.speed_factor = float(ev.speed_factor)
            if ev.thermal is not None:
                ns.thermal = ev.thermal
        elif action is Action.THERMAL:
            ns.thermal = ev.thermal
        twin.publish(rt, now)
        self.applied.append((now, ev.node, action.value))
        if action is Action.JOIN:
            core.node_joined(now, ev.node)
        elif action in (Action.LEAVE, Action.FAIL):
            core.node_left(now, ev.node)
        else:
            core.node_changed(now, ev.node)

    def _evacuate(self, rt, verb: str, now: float) -> None:
        """The node's running and queued tasks lose their attempt, oldest first, once the
        node is gone from the state (so no re-offer can pick it)."""
        twin = self.twin
        why = f"node {rt.node.id} {verb}"
        running = sorted(rt.running, key=lambda i: twin.w.arrival_s[i])
        lost = running + [i for i in rt.queue if i not in rt.running]
        for i in running:
            twin.account_partial_run(i, rt)
        rt.depart(now)  # wipes the node and publishes it as departed
        twin.publish(rt, now)
        for i in sorted(lost, key=lambda i: twin.w.arrival_s[i]):
            twin._interrupt(i, None, why)

    def _new_node(self, ev: FleetEvent) -> Node:
        from heddle.models.catalog import device  # the catalog lands with the models package

        try:
            spec = device(ev.device)
        except KeyError as exc:
            raise ScenarioError(f"{self.origin}: join of {ev.node!r}: unknown device {ev.device!r}") from exc
        return Node(id=NodeId(ev.node), device=spec, memory_gb=float(ev.memory_gb),
                    owner=OwnerId(ev.owner), slots=ev.slots)
