"""The features rule: a task that needs a feature (tool calls, embeddings, a raw prompt, fill
in the middle) is never placed on a node or an API offer that does not offer it. Every
placement path keeps it (test_privacy_paths.py, with privacy); here the scheduling core's
waiting queue too, where it leads when a node is busy, and the reason a task no target can
run gets: which need and who lacks it."""

from __future__ import annotations

from hypothesis import given, settings

from heddle.models import (
    Fleet,
    FleetState,
    ModelId,
    Node,
    NodeId,
    OwnerId,
    Privacy,
    Task,
    TaskId,
    TaskKind,
    catalog,
)
from heddle.optimizer import POLICY_NAMES, DecisionStatus, Policy, place
from heddle.optimizer.express import ExpressPlacer, task_row
from tests.optimizer.conftest import problems
from tests.optimizer.paths import core_starts, offers_what_it_needs


@settings(max_examples=60, deadline=None)
@given(problem=problems(max_nodes=4, max_tasks=6))
def test_the_scheduling_core_starts_work_only_where_every_need_is_offered(problem):
    """Through the waiting queue too (the re-offers go by constraint class, which holds the needs)."""
    for state, task, target in core_starts(*problem):
        assert offers_what_it_needs(state, task, target), f"core: {task.id} needs {sorted(task.needs)}, on {target}"


# -- the reason, in words ------------------------------------------------------------------------

def _fleet(mlx_features: frozenset[str] | None) -> FleetState:
    device = catalog.device("m1-7")
    nodes = (Node(NodeId("gw-a"), device, 16.0, OwnerId("ann")),
             Node(NodeId("gw-b"), device, 16.0, OwnerId("ann"), features=mlx_features))
    return FleetState.idle(Fleet("two", nodes), 0.0)


def _chat(needs: frozenset[str], privacy: Privacy = Privacy.PUBLIC) -> Task:
    return Task(TaskId("t"), TaskKind.LLM, model=ModelId("qwen2.5-7b"), quant="q4_k_m", prompt_tokens=100,
                output_tokens=50, privacy=privacy, owner=OwnerId("bob"), needs=needs)


def test_a_tool_call_goes_to_the_node_that_runs_tools_and_a_chat_may_go_to_either():
    state = _fleet(frozenset({"raw"}))
    for name in POLICY_NAMES:
        assert place(state, [_chat(frozenset({"tools"}))], name).decisions[0].target == "gw-a", name
    placer = ExpressPlacer(state, Policy(explain=False))
    assert placer.place_row(task_row(_chat(frozenset({"tools"}))))[0] == 0
    assert placer.place_row(task_row(_chat(frozenset({"raw"}))))[0] == 0  # the first node, when both may
    state.nodes[NodeId("gw-a")].free_slots = 0
    assert place(state, [_chat(frozenset({"raw"}))]).decisions[0].target == "gw-b"
    tools = place(state, [_chat(frozenset({"tools"}))]).decisions[0]
    assert tools.status is DecisionStatus.DEFERRED  # gw-a is busy, gw-b can never: wait for gw-a


def test_when_no_target_runs_a_need_the_task_is_rejected_saying_which_and_who():
    lacking = _fleet(frozenset({"raw"}))
    lacking.fleet = Fleet("two", tuple(Node(n.id, n.device, n.memory_gb, n.owner, features=frozenset({"raw"}),
                                            runtime="mlx" if n.id == "gw-b" else "")
                                       for n in lacking.fleet.nodes))
    for name in POLICY_NAMES:
        d = place(lacking, [_chat(frozenset({"tools"}))], name).decisions[0]
        assert d.status is DecisionStatus.REJECTED, name
        assert "tools: no target runs tool calls for qwen2.5-7b (gw-b on mlx) (2)" in d.reason, d.reason


def test_the_reason_names_the_nodes_that_lack_a_need_beside_other_reasons():
    state = _fleet(frozenset({"raw"}))  # gw-a is ann's: bob's personal work may run on neither...
    state.fleet = Fleet("two", (state.fleet.nodes[0], Node(NodeId("gw-b"), state.fleet.nodes[1].device, 16.0,
                                                         OwnerId("bob"), features=frozenset({"raw"}))))
    d = place(state, [_chat(frozenset({"tools"}), Privacy.PERSONAL)]).decisions[0]  # ...but bob's gw-b
    assert d.status is DecisionStatus.REJECTED
    assert "privacy" in d.reason and "tools: gw-b does not run tool calls for qwen2.5-7b (1)" in d.reason, d.reason
