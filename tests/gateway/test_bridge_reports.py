"""What the gateway lists as served follows each node's latest capacity report, even when the
reports come faster than it reads them (`REDECODE_S`). The reproducer of a CI failure: the
first reports said no model was resident, the model loaded within the next second, and
/api/tags listed nothing because the reports in that second were skipped unread."""

from __future__ import annotations

import time
from types import SimpleNamespace

from heddle.gateway.bridge import REDECODE_S, Bridge
from heddle.live import protocol as p

MODEL = ("llama-3.1-8b", "q4_k_m")


def report(node: str, seq: int, resident: tuple[tuple[str, str], ...]) -> SimpleNamespace:
    """A capacity report as it arrives on the node's subject."""
    message = p.CapacityReport(
        sender=f"agent-{node}", seq=seq, sent_at=time.time(), node_id=node, agent_id=f"agent-{node}",
        hostname=node, os="linux", arch="x86_64", chip="?", device="m2-ultra-76",
        memory=p.Memory(total_gb=192, free_gb=150, unified=True),
        cpu=p.Cpu(performance_cores=16, utilization=0.1), owner="alice", slots=4, free_slots=4,
        resident_models=tuple(p.ResidentModel(model=m, quant=q) for m, q in resident))
    return SimpleNamespace(subject=p.subject(p.CAPACITY, node=node), data=p.encode(message))


async def test_a_model_loaded_between_two_reads_is_listed_at_once():
    bridge = Bridge(nc=None)
    await bridge._on_capacity(report("mac", 1, ()))
    assert bridge.served() == {}
    await bridge._on_capacity(report("mac", 2, (MODEL,)))  # within REDECODE_S of the first
    assert time.monotonic() - bridge.reports["mac"][0] < REDECODE_S
    assert bridge.served() == {MODEL: ["mac"]}  # what /v1/models and /api/tags list


async def test_a_requests_quant_reads_no_report_sooner_than_redecode_s():
    bridge = Bridge(nc=None)
    await bridge._on_capacity(report("mac", 1, (MODEL,)))
    await bridge._on_capacity(report("mac", 2, ()))  # unloaded; read only when a listing asks
    assert bridge.served(latest=False) == {MODEL: ["mac"]}
    assert bridge.reports["mac"][1].seq == 1
    assert bridge.served() == {}
    assert bridge.reports["mac"][1].seq == 2


async def test_an_unreadable_report_kept_unread_is_refused_when_read_and_the_last_good_one_stays():
    bridge = Bridge(nc=None)
    await bridge._on_capacity(report("mac", 1, (MODEL,)))
    await bridge._on_capacity(SimpleNamespace(subject=p.subject(p.CAPACITY, node="mac"), data=b"{not json"))
    assert bridge.served() == {MODEL: ["mac"]}
    assert bridge.refused == 1
