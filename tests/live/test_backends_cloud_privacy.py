"""Privacy on the live cloud path: the fleet the control plane builds from capacity reports and
a fleet file's cloud offers, placed on by `place()`, never sends personal or sensitive work
to the cloud, and personal work runs only on its owner's or a trusting node; the control
plane's own check refuses a non-public cloud placement before anything is sent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.live import protocol as p
from heddle.live.control.fleetview import FleetView
from heddle.live.control.privacy import PrivacyViolationError, check_cloud_privacy
from heddle.models import Fleet, Privacy, Task, TaskKind, Tier, catalog
from heddle.models.fleet_types import Budget
from heddle.optimizer import TargetKind, place

OFFER = "claude-haiku-4.5"
TERMS = Fleet("home", (), cloud_offers=(catalog.offer(OFFER),), budgets={"team": Budget("team", 1.0)})


def report(node: str, owner: str, *, slots: int = 1, cloud_offers: tuple[str, ...] = ()) -> p.CapacityReport:
    return p.CapacityReport(
        sender=node, seq=1, sent_at=0.0, node_id=node, agent_id=node, hostname=node, os="linux",
        arch="x86_64", chip="?", device="m1-7", memory=p.Memory(total_gb=8, free_gb=6, unified=True),
        cpu=p.Cpu(performance_cores=4, utilization=0.1), owner=owner, slots=slots, free_slots=slots,
        cloud_offers=cloud_offers)


tasks = st.lists(st.builds(
    lambda i, privacy, owner, tier, prompt, output: Task(
        id=f"t{i}", kind=TaskKind.LLM, model="llama-3.1-8b", quant="q4_k_m", prompt_tokens=prompt,
        output_tokens=output, privacy=privacy, owner=owner, tier=tier, account="team"),
    st.integers(0, 10**6), st.sampled_from(list(Privacy)), st.sampled_from(["ann", "bob"]),
    st.sampled_from([None, Tier.LOCAL, Tier.STANDARD]), st.integers(1, 4000), st.integers(1, 1000),
), min_size=1, max_size=8, unique_by=lambda t: t.id)


@settings(max_examples=25, deadline=None)
@given(tasks=tasks, relay_owner=st.sampled_from(["ann", "bob"]), policy=st.sampled_from(["fast", "cheapest", "optimal"]))
def test_cloud_placements_on_the_live_fleet_are_public_work_only(tasks, relay_owner, policy):
    view = FleetView(terms=TERMS)
    view.observe(report("relay", relay_owner, cloud_offers=(OFFER,)), 0.0)
    view.observe(report("box", "bob", slots=2), 0.0)
    assert [o.id for o in view.state.fleet.cloud_offers] == [OFFER]  # an agent can call it
    by_id = {t.id: t for t in tasks}
    for decision in place(view.state, tasks, policy).decisions:
        task = by_id[decision.task_id]
        if decision.target_kind is TargetKind.CLOUD:
            assert task.privacy is Privacy.PUBLIC
        elif decision.target_kind is TargetKind.NODE and task.privacy is Privacy.PERSONAL:
            assert view.state.fleet.node(decision.target).may_hold_personal_of(task.owner)


def test_public_standard_work_goes_to_an_offer_an_agent_can_call_and_nowhere_else():
    view = FleetView(terms=TERMS)
    view.observe(report("relay", "ann", cloud_offers=(OFFER,)), 0.0)
    task = Task(id="s", kind=TaskKind.LLM, model="llama-3.1-8b", quant="q4_k_m", prompt_tokens=100,
                output_tokens=50, tier=Tier.STANDARD, account="team")
    (decision,) = place(view.state, [task], "fast").decisions
    assert (decision.target_kind, decision.target, view.relay_for(OFFER)) == (TargetKind.CLOUD, OFFER, "relay")
    view.mark_draining("relay")
    assert view.state.fleet.cloud_offers == () and view.relay_for(OFFER) is None


@pytest.mark.parametrize("privacy", [Privacy.PERSONAL, Privacy.SENSITIVE])
def test_the_control_plane_refuses_to_send_private_work_to_the_cloud(privacy):
    with pytest.raises(PrivacyViolationError, match=f"{privacy.value} task t1 may not be sent to a cloud API"):
        check_cloud_privacy(Task(id="t1", kind=TaskKind.LLM, privacy=privacy, owner="ann"))
