"""A drain the control plane asked for outlasts a silence of the same agent, and only that:
under load a node can be declared lost (or unreachable) between the drain command and the
agent's first report that says so, and its next report, still 'active', must not bring new
work back to it. A new agent process on that node starts free of the old one's drain."""

from __future__ import annotations

from heddle.live import protocol as p
from heddle.live.control.fleetview import FleetView


def report(seq: int, status: p.NodeStatus = p.NodeStatus.ACTIVE, sent_at: float = 0.0) -> p.CapacityReport:
    return p.CapacityReport(
        sender="east", seq=seq, sent_at=sent_at, node_id="east", agent_id="east", hostname="east",
        os="linux", arch="x86_64", chip="?", device="m1-7",
        memory=p.Memory(total_gb=8, free_gb=6, unified=True), cpu=p.Cpu(performance_cores=4, utilization=0.1),
        owner="ann", slots=2, free_slots=2, status=status)


def drained_view() -> FleetView:
    view = FleetView()
    view.observe(report(1), 0.0)
    view.observe(report(5), 1.0)
    view.mark_draining("east")
    assert not view.usable("east")
    return view


def test_the_same_agent_back_from_a_silence_stays_drained():
    view = drained_view()
    view.mark_gone("east", left=False)  # declared lost before its report said draining
    assert view.observe(report(6), 2.0) == "rejoined"
    assert not view.usable("east")
    view = drained_view()
    view.mark_unreachable("east")
    view.observe(report(6), 2.0)
    assert not view.usable("east")


def test_a_new_agent_process_on_the_node_takes_work_again():
    view = drained_view()
    view.mark_gone("east", left=False)  # killed while draining: a restarted agent counts from 1
    assert view.observe(report(1), 3.0) == "rejoined"
    assert view.usable("east")
    view = drained_view()
    view.observe(report(6, p.NodeStatus.DRAINING), 2.0)
    view.mark_gone("east", left=True)  # it said goodbye; whatever comes next is a new process
    view.observe(report(7), 3.0)
    assert view.usable("east")


def test_a_report_sent_before_the_goodbye_and_overtaken_by_it_does_not_bring_the_node_back():
    """The goodbye travels on plain NATS and can overtake the agent's last capacity report:
    that report is stale (the node stayed 'rejoined' and active in the fleet, then missed
    its reports and was lost instead of left: tests/live/test_cluster_faults.py's drain)."""
    view = drained_view()
    view.observe(report(6, p.NodeStatus.DRAINING, sent_at=10.0), 2.0)
    view.mark_gone("east", left=True, goodbye=(8, 11.0))
    assert view.observe(report(7, p.NodeStatus.DRAINING, sent_at=10.5), 3.0) == "seen"
    assert view.nodes["east"].left and not view.usable("east")
    assert view.observe(report(1, sent_at=12.0), 4.0) == "rejoined"  # a new process on it
    assert view.usable("east")
