"""The agent in-process, without NATS: its own privacy check (defence in depth) agrees with
the fleet's rule for every owner, trust and task; a backend executor plugs in."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.live import protocol as p
from heddle.live.agent import AgentSettings, Probe, default_registry
from heddle.live.agent.runtime import Agent
from heddle.models import catalog
from heddle.models.fleet_types import Node
from heddle.models.ids import NodeId, OwnerId, Privacy

OWNERS = ["ana", "bo", "cy", "dee"]
PROBE = Probe()


@settings(deadline=None)  # the first example loads the catalog
@given(
    node_owner=st.sampled_from(OWNERS),
    trusted=st.frozensets(st.sampled_from(OWNERS)),
    privacy=st.sampled_from(Privacy),
    task_owner=st.none() | st.sampled_from(OWNERS),
)
def test_agent_refuses_exactly_the_personal_work_its_node_may_not_hold(
    node_owner, trusted, privacy, task_owner
):
    settings = AgentSettings(node_id="n1", owner=node_owner, trusted_owners=tuple(sorted(trusted)),
                             slots=1)
    agent = Agent(settings, default_registry(), PROBE)
    assignment = p.Assignment(
        sender="cp", seq=1, sent_at=time.time(), node_id="n1", attempt=0, queued_at=time.time(),
        task=p.TaskSpec(id="t", kind="processor", privacy=privacy, owner=task_owner),
        executor=p.ExecutorSpec(kind="echo"),
    )
    node = Node(id=NodeId("n1"), device=catalog.device("m1-8"), memory_gb=8,
                owner=OwnerId(node_owner), trusted_owners=frozenset(OwnerId(o) for o in trusted))
    allowed = privacy is not Privacy.PERSONAL or node.may_hold_personal_of(
        OwnerId(task_owner) if task_owner else None)
    reason = agent.refusal(assignment)
    assert (reason is None) == allowed, reason
    if privacy is Privacy.PERSONAL and task_owner != node_owner and task_owner not in trusted:
        assert reason is not None and reason.startswith("privacy")


def test_a_backend_plugs_in_and_its_resident_models_are_reported():
    from heddle.live.agent import Executor

    class Backend(Executor):
        kinds = ("ollama",)

        def check(self, spec):
            return None if spec.target == "llama-3.1-8b" else f"model {spec.target!r} not pulled"

        def resident_models(self):
            return [("llama-3.1-8b", "q4_k_m")]

        async def run(self, assignment, progress):  # pragma: no cover - not run here
            return None

    registry = default_registry()
    registry.register(Backend())
    agent = Agent(AgentSettings(node_id="n1", slots=2), registry, PROBE)
    report = agent.capacity_report()
    assert [(m.model, m.quant) for m in report.resident_models] == [("llama-3.1-8b", "q4_k_m")]
    assert p.node_state(report).resident_models == frozenset({("llama-3.1-8b", "q4_k_m")})
    assert registry.refusal(p.ExecutorSpec(kind="ollama", target="llama-3.1-8b")) is None
    assert "not pulled" in registry.refusal(p.ExecutorSpec(kind="ollama", target="qwen"))
