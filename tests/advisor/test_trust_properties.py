"""Property tests of the purchase trust rule: buying hardware never widens who may run
personal work where (hypothesis over random fleets)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.advisor.candidates import add_candidate, primary_owner, replace_candidate
from heddle.models import catalog
from tests.advisor.conftest import fleet_of, node

OWNERS = ("alice", "bob", "carol", "dave")
DEVICES = ("m4-10", "m4-pro-20", "jetson-orin-nano-super")

node_st = st.builds(
    lambda i, dev, owner, trusted: node(f"n{i}", dev, catalog.device(dev).memory_options_gb[0], owner,
                                        [t for t in trusted if t != owner]),
    st.integers(0, 10_000), st.sampled_from(DEVICES), st.sampled_from(OWNERS),
    st.frozensets(st.sampled_from(OWNERS), max_size=3),
)
fleet_st = st.lists(node_st, min_size=1, max_size=6, unique_by=lambda n: n.id).map(
    lambda nodes: fleet_of(*nodes))


def _allowed(fleet) -> set[tuple[str, str]]:
    """(owner of personal work, machine owner) pairs the fleet already allows."""
    return {(o, n.owner) for n in fleet.nodes for o in OWNERS if n.may_hold_personal_of(o)}


@settings(max_examples=150, deadline=None)
@given(fleet_st, st.sampled_from(DEVICES), st.integers(1, 3), st.sampled_from((None, *OWNERS)))
def test_a_purchase_never_widens_personal_trust(fleet, device, units, buyer):
    """Whoever buys it (the primary owner, or an owner for themselves, as the candidates aimed
    at a trust cause do), a new machine runs personal work only of owners who already let that
    buyer's machines run it."""
    c = add_candidate(fleet, catalog.device(device), catalog.device(device).memory_options_gb[-1], units,
                      owner=buyer)
    new = [n for n in c.fleet.nodes if n.id.startswith("buy-")]
    assert len(new) == units and c.fleet.nodes[: len(fleet.nodes)] == fleet.nodes
    for n in new:
        assert n.owner == (buyer or primary_owner(fleet))
        for o in OWNERS:
            if n.may_hold_personal_of(o):
                assert (o, n.owner) in _allowed(fleet) or o == n.owner


@settings(max_examples=100, deadline=None)
@given(fleet_st, st.sampled_from(DEVICES))
def test_a_replacement_serves_exactly_whom_the_old_node_served(fleet, device):
    old = fleet.nodes[0]
    c = replace_candidate(fleet, old, catalog.device(device), catalog.device(device).memory_options_gb[0])
    (new,) = [n for n in c.fleet.nodes if n.id.startswith("buy-")]
    assert {o for o in OWNERS if new.may_hold_personal_of(o)} == \
        {o for o in OWNERS if old.may_hold_personal_of(o)}
