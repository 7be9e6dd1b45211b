"""The installed-models rule: an LLM step is never placed on a node whose servers' installed
set is known and lacks the step's (model, quant) (any quant when it names none). Every
placement path keeps it (test_privacy_paths.py, with privacy and features); here the
scheduling core's waiting queue too, and the reason a task no node has the model for gets:
whose servers do not have what."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from heddle.models import Fleet, FleetState, Node, NodeId, OwnerId, catalog
from heddle.models.errors import FleetError
from heddle.models.fleet import parse_fleet
from heddle.models.ids import ModelId, TaskId, TaskKind
from heddle.models.task import Task
from heddle.optimizer import POLICY_NAMES, DecisionStatus, Policy, place
from heddle.optimizer.express import ExpressPlacer, task_row
from tests.optimizer.conftest import problems
from tests.optimizer.paths import core_starts, has_its_model


@settings(max_examples=60, deadline=None)
@given(problem=problems(max_nodes=4, max_tasks=6))
def test_the_scheduling_core_starts_work_only_where_the_model_is_installed(problem):
    """Through the waiting queue too (the re-offers go by constraint class, which holds the model and quant)."""
    for state, task, target in core_starts(*problem):
        assert has_its_model(state, task, target), f"core: {task.id} ({task.model} {task.quant}) on {target}"


def _fleet(a_has: frozenset | None, b_has: frozenset | None) -> FleetState:
    device = catalog.device("m1-max-32")
    nodes = (Node(NodeId("carol-a"), device, 32.0, OwnerId("ann"), installed=a_has),
             Node(NodeId("carol-b"), device, 32.0, OwnerId("ann"), installed=b_has))
    return FleetState.idle(Fleet("two", nodes), 0.0)


def _chat(quant: str | None = "q8_0") -> Task:
    return Task(TaskId("t"), TaskKind.LLM, model=ModelId("gpt-oss-20b"), quant=quant, prompt_tokens=100,
                output_tokens=50)


Q8 = frozenset({("gpt-oss-20b", "q8_0")})
Q4 = frozenset({("gpt-oss-20b", "mxfp4"), ("llama-3.1-8b", "q4_k_m")})


def test_a_step_goes_to_the_node_whose_servers_have_its_model_and_quant():
    state = _fleet(Q4, Q8)  # carol-a (first: the tie-break) has only another quant
    for name in POLICY_NAMES:
        assert place(state, [_chat()], name).decisions[0].target == "carol-b", name
    assert ExpressPlacer(state, Policy(explain=False)).place_row(task_row(_chat()))[0] == 1
    state.nodes[NodeId("carol-b")].free_slots = 0
    assert place(state, [_chat()]).decisions[0].status is DecisionStatus.DEFERRED  # wait for carol-b


def test_an_unknown_installed_set_may_run_anything():
    state = _fleet(None, None)
    assert place(state, [_chat()]).decisions[0].target == "carol-a"


def test_when_no_node_has_the_model_the_task_is_rejected_naming_whose_servers_lack_what():
    for name in POLICY_NAMES:
        d = place(_fleet(Q4, None), [_chat()], name).decisions[0]  # carol-b unknown: it may
        assert d.target == "carol-b", name
        d = place(_fleet(Q4, frozenset()), [_chat()], name).decisions[0]
        assert d.status is DecisionStatus.REJECTED, name
        assert "model: the servers of carol-a, carol-b do not have gpt-oss-20b q8_0 (2)" in d.reason, d.reason
    only_a = Fleet("one", _fleet(Q4, Q8).fleet.nodes[:1])
    d = place(FleetState.idle(only_a, 0.0), [_chat()]).decisions[0]
    assert "model: carol-a's servers do not have gpt-oss-20b q8_0 (1)" in d.reason, d.reason


def test_a_fleet_file_lists_a_nodes_installed_models():
    fleet = parse_fleet(
        "name: f\nnodes:\n"
        "  - {id: carol-a, device: m1-max-32, memory_gb: 32, owner: ann, installed: ['gpt-oss-20b:mxfp4']}\n"
        "  - {id: carol-b, device: m1-max-32, memory_gb: 32, owner: ann}\n")
    assert fleet.nodes[0].installed == frozenset({("gpt-oss-20b", "mxfp4")})
    assert fleet.nodes[1].installed is None
    assert place(FleetState.idle(fleet, 0.0), [_chat()]).decisions[0].target == "carol-b"
    with pytest.raises(FleetError, match=r"^f\.yaml:3: nodes\[0\]\.installed\[0\]: .*\(got 'gpt-oss-20b'\)"):
        parse_fleet("name: f\nnodes:\n  - {id: a, device: m1-max-32, memory_gb: 32, owner: ann, "
                    "installed: [gpt-oss-20b]}\n", "f.yaml")  # model:quant, the quant missing
