"""The control plane's view of the fleet: nodes as their capacity reports describe them,
the work it has assigned to each, and when each was last heard from.

The optimizer's `FleetState` is built from here. Free slots count what this control plane
has assigned and not yet seen finish (a report is up to one interval old, an assignment is
known at once); memory, resident models, thermal and power come from the latest report. A
node that misses too many reports is lost; one that reports again rejoins.

The fleet file's terms (cloud offers, budgets, electricity price; heddle scheduler --fleet)
join the nodes in the optimizer's `Fleet`: an API offer is in it while some usable agent can
call it (its reports list it), so `place()` never chooses a cloud nobody can reach, and it
runs the features those agents' cloud backend runs (heddle.live.features); a node runs what
its local backends do. A cloud
attempt is relayed by such an agent without taking one of its slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from heddle.live.control.export import measured_node
from heddle.live.features import cloud_features
from heddle.live.protocol import CapacityReport, node_from_report, node_state
from heddle.models import Fleet, FleetState, Node, NodeId, NodeState, NodeStatus, OfferKind
from heddle.optimizer.view import backlog_s

__all__ = ["FleetView", "LiveNode"]

FLEET_NAME = "live"
_NODE_STATE_FIELDS = tuple(f.name for f in fields(NodeState))


@dataclass(slots=True)
class LiveNode:
    node: Node
    report: CapacityReport
    last_seen_s: float
    running: dict[str, int] = field(default_factory=dict)  # task id -> attempt assigned here
    finish_s: dict[str, float] = field(default_factory=dict)  # task id -> predicted finish
    relaying: dict[str, int] = field(default_factory=dict)  # cloud calls made here: task -> attempt
    lost: bool = False
    unreachable: bool = False  # an assignment found no agent listening: wait for its next report
    draining: bool = False  # asked to drain by this control plane (or reported draining)
    left: bool = False
    # the goodbye's (seq, sent_at): a report the same process sent before it (overtaken by
    # the goodbye, which travels on plain NATS) is stale, not a rejoin
    goodbye: tuple[int, float] | None = None


class FleetView:
    """Nodes by id plus the FleetState handed to the scheduling core (kept current here)."""

    def __init__(self, fallback_device: str | None = None, terms: Fleet | None = None, now_s: float = 0.0) -> None:
        self.fallback_device = fallback_device
        self.terms = terms or Fleet(name=FLEET_NAME, nodes=())
        self.nodes: dict[NodeId, LiveNode] = {}
        self.state = FleetState(time_s=now_s, fleet=self._fleet(), nodes={})

    # -- reports in ---------------------------------------------------------------------------
    def observe(self, report: CapacityReport, now_s: float) -> str:
        """Take a capacity report; returns "joined", "rejoined" or "seen".

        Raises ProtocolError when the report names no catalog device (and no fallback)."""
        node_id = NodeId(report.node_id)
        live = self.nodes.get(node_id)
        # at the per-core speed its agent measured: the twin replays on this node (export.py)
        node = measured_node(node_from_report(report, self.fallback_device), report)
        before = None if live is None else (live.report.cloud_offers, live.report.features, live.draining)
        if live is None:
            live = self.nodes[node_id] = LiveNode(node, report, now_s)
            outcome = "joined"
        else:
            if live.left and live.goodbye is not None and report.seq < live.goodbye[0] \
                    and report.sent_at <= live.goodbye[1]:
                return "seen"  # sent before its goodbye, which overtook it: it has still left
            outcome = "rejoined" if (live.lost or live.left or live.unreachable) else "seen"
            if report.seq < live.report.seq and outcome == "seen":
                return "seen"  # an older report overtaken by a newer one: nothing new
            # A new agent process (the old one said goodbye, or the sequence started over) is
            # not bound by a drain asked of the old one; the same process back from a silence
            # is: its reports may still say active while the drain command is on its way.
            new_process = live.left or report.seq <= live.report.seq
            live.report, live.last_seen_s = report, now_s
            live.lost = live.left = live.unreachable = False
            if report.status is NodeStatus.DRAINING:
                live.draining = True
            elif outcome == "rejoined" and new_process:
                live.draining = False
        if live.node != node or outcome == "joined":
            live.node = node
            self._rebuild_fleet()
        elif outcome != "seen" or before != (report.cloud_offers, report.features, live.draining):
            self._offers_changed()
        self._refresh(live)
        return outcome

    def _fleet(self) -> Fleet:
        usable = [live for live in self.nodes.values() if self.usable(live.node.id)]
        callable_: dict[str, set[str]] = {}  # offer -> the features some agent calling it runs
        for live in usable:
            offered = cloud_features(live.report.features, live.report.v) or frozenset()
            for offer in live.report.cloud_offers:
                callable_.setdefault(offer, set()).update(offered)
        offers = tuple(o for o in self.terms.cloud_offers if o.kind is OfferKind.API and o.id in callable_)
        return Fleet(
            name=FLEET_NAME, nodes=tuple(live.node for live in self.nodes.values()),
            cloud_offers=offers, budgets=self.terms.budgets,
            electricity_usd_per_kwh=self.terms.electricity_usd_per_kwh,
            offer_features={o.id: frozenset(callable_[o.id]) for o in offers},
        )

    def _rebuild_fleet(self) -> None:
        self.state.fleet = self._fleet()

    def _offers_changed(self) -> None:
        """A node's usability changed: the offers someone can call (and what they run) may have too."""
        if self.terms.cloud_offers:
            fleet = self._fleet()
            if (fleet.cloud_offers, fleet.offer_features) != (self.state.fleet.cloud_offers,
                                                                self.state.fleet.offer_features):
                self.state.fleet = fleet

    def relay_for(self, offer_id: str) -> NodeId | None:
        """The usable node to call ``offer_id`` through: the one relaying the fewest calls."""
        relays = [live for node_id, live in self.nodes.items()
                  if offer_id in live.report.cloud_offers and self.usable(node_id)]
        best = min(relays, key=lambda live: (len(live.relaying), live.node.id), default=None)
        return None if best is None else best.node.id

    def _refresh(self, live: LiveNode) -> None:
        fresh = node_state(live.report)
        fresh.free_slots = max(0, live.node.slots - len(live.running))
        if live.lost or live.left or live.unreachable:
            fresh.status = NodeStatus.DEPARTED
        elif live.draining:
            fresh.status = NodeStatus.DRAINING
        state = self.state.nodes.get(live.node.id)
        if state is None:
            self.state.nodes[live.node.id] = fresh
            return
        for name in _NODE_STATE_FIELDS:  # in place: placers keep references to these objects
            setattr(state, name, getattr(fresh, name))

    # -- assignments ----------------------------------------------------------------------------
    def assigned(self, node_id: NodeId, task_id: str, attempt: int, finish_s: float | None = None) -> None:
        live = self.nodes[node_id]
        live.running[task_id] = attempt
        if finish_s is not None:
            live.finish_s[task_id] = finish_s
        self.state.nodes[node_id].free_slots = max(0, live.node.slots - len(live.running))

    def relayed(self, node_id: NodeId, task_id: str, attempt: int) -> None:
        """A cloud call went out through this node (no slot taken)."""
        self.nodes[node_id].relaying[task_id] = attempt

    def released(self, node_id: NodeId, task_id: str) -> bool:
        """The task no longer holds a slot there; True if it did."""
        live = self.nodes.get(node_id)
        if live is None or live.relaying.pop(task_id, None) is not None:
            return False  # a cloud call held no slot
        if live.running.pop(task_id, None) is None:
            return False
        live.finish_s.pop(task_id, None)
        if node_id in self.state.nodes:
            self.state.nodes[node_id].free_slots = max(0, live.node.slots - len(live.running))
        return True

    def refresh_backlog(self, now_s: float) -> None:
        """Each full node's backlog from its assignments' predicted finishes, by the rule the twin
        uses (`optimizer.view.backlog_s`), so deferral is priced the same in both bodies."""
        for live in self.nodes.values():
            ns = self.state.nodes.get(live.node.id)
            if ns is None:
                continue
            if ns.free_slots > 0:
                ns.backlog_s = 0.0
                continue
            finishes = live.finish_s
            ns.backlog_s = backlog_s(sum(finishes.values()), len(finishes), now_s, 0.0, live.node.slots)

    # -- liveness -------------------------------------------------------------------------------
    def overdue(self, now_s: float, silence_s: float) -> list[NodeId]:
        """Nodes not heard from for more than ``silence_s`` and not yet declared lost."""
        return [
            node_id
            for node_id, live in self.nodes.items()
            if not (live.lost or live.left) and now_s - live.last_seen_s > silence_s
        ]

    def mark_gone(self, node_id: NodeId, *, left: bool,
                  goodbye: tuple[int, float] | None = None) -> list[tuple[str, int]]:
        """Declare a node lost (silent) or left (said goodbye: its ``(seq, sent_at)``);
        returns its assigned work."""
        live = self.nodes[node_id]
        if left:
            live.left, live.goodbye = True, goodbye
        else:
            live.lost = True
        work = [*live.running.items(), *live.relaying.items()]
        live.running.clear()
        live.relaying.clear()
        self._refresh(live)
        self._offers_changed()
        return work

    def mark_unreachable(self, node_id: NodeId) -> None:
        """No agent listens there now (e.g. it is reconnecting): no work until it reports."""
        live = self.nodes[node_id]
        live.unreachable = True
        self._refresh(live)
        self._offers_changed()

    def mark_draining(self, node_id: NodeId) -> None:
        live = self.nodes[node_id]
        live.draining = True
        self._refresh(live)
        self._offers_changed()

    def accepts(self, node_id: str, message_type: str) -> bool:
        """Does the node's agent take ``message_type`` (protocol >= 1.1 messages it lists)?"""
        live = self.nodes.get(NodeId(node_id))
        return live is not None and message_type in live.report.accepts

    def usable(self, node_id: str) -> bool:
        """May new work be sent there now (known, present, not draining)?"""
        live = self.nodes.get(NodeId(node_id))
        return live is not None and not (live.lost or live.left or live.draining or live.unreachable)
