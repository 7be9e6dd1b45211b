"""Property: whatever single field of a valid fleet is corrupted, the error names its line and field."""

import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heddle.models import catalog
from heddle.models.errors import FleetError
from heddle.models.fleet import parse_fleet

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEVICES = sorted(catalog.devices())
OWNERS = ["alice", "bob", "carol"]


@st.composite
def fleets(draw):
    n = draw(st.integers(1, 6))
    nodes = []
    for i in range(n):
        dev = catalog.device(draw(st.sampled_from(DEVICES)))
        node = {"id": f"node{i}", "device": dev.id, "memory_gb": draw(st.sampled_from(dev.memory_options_gb)),
                "owner": draw(st.sampled_from(OWNERS))}
        if draw(st.booleans()):
            node["trusted_owners"] = draw(st.lists(st.sampled_from(OWNERS), max_size=2, unique=True))
        if draw(st.booleans()):
            node["labels"] = {"location": draw(st.sampled_from(["office", "home"]))}
        if draw(st.booleans()):
            node["slots"] = draw(st.integers(1, 8))
        nodes.append(node)
    return {"name": "prop", "cloud_offers": draw(st.lists(st.sampled_from(sorted(catalog.offers())), max_size=3, unique=True)),
            "nodes": nodes}


# (field, bad value, words the message must contain); the bad value is unique text in the file
CORRUPTIONS = [
    ("device", "no-such-device-x9", "unknown device id"),
    ("memory_gb", 999999, "exceeds"),
    ("memory_gb", "lots-of-ram", "valid number"),
    ("slots", 0, "greater than or equal to 1"),
    ("slots", "several-slots", "valid integer"),
    ("power_source", "solar-panel", "'ac' or 'battery'"),
    ("owner", "has spaces here", "pattern"),
    ("zz_unknown_field", 1, "unknown field"),
    ("trusted_owners", "not-a-list-q7", "valid list"),
    ("reserved_memory_gb", -12345, "greater than or equal to 0"),
]


@PROPS
@given(fleets(), st.data())
def test_any_corrupted_node_field_is_reported_with_its_line(fleet, data):
    i = data.draw(st.integers(0, len(fleet["nodes"]) - 1))
    field, value, words = data.draw(st.sampled_from(CORRUPTIONS))
    fleet["nodes"][i][field] = value
    # block style, or block with inline {...} nodes; never wrapped, so a value sits on one line
    style = data.draw(st.sampled_from([False, None]))
    text = yaml.safe_dump(fleet, sort_keys=data.draw(st.booleans()), default_flow_style=style, width=10**6)
    token = str(value) if field != "zz_unknown_field" else field
    lines = [n for n, line in enumerate(text.splitlines(), 1) if token in line]
    with pytest.raises(FleetError) as info:
        parse_fleet(text, "prop.yaml")
    msg = str(info.value)
    m = re.match(r"prop\.yaml:(\d+): (\S+): (.*)", msg)
    assert m, msg
    assert int(m.group(1)) in lines, (msg, text)
    assert m.group(2).startswith(f"nodes[{i}].{field}"), msg
    assert words in msg, msg


@PROPS
@given(fleets(), st.data())
def test_unknown_offer_is_reported_with_its_line(fleet, data):
    fleet["cloud_offers"] = fleet["cloud_offers"] + ["made-up-offer-k3"]
    text = yaml.safe_dump(fleet, default_flow_style=data.draw(st.sampled_from([False, None])), width=10**6)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "made-up-offer-k3" in l)
    with pytest.raises(FleetError, match=rf"^prop\.yaml:{line}: cloud_offers\[\d+\]: unknown offer id 'made-up-offer-k3'"):
        parse_fleet(text, "prop.yaml")


@PROPS
@given(fleets())
def test_valid_fleets_round_trip(fleet):
    parsed = parse_fleet(yaml.safe_dump(fleet), "ok.yaml")
    assert [n.id for n in parsed.nodes] == [n["id"] for n in fleet["nodes"]]
    assert [n.memory_gb for n in parsed.nodes] == [float(n["memory_gb"]) for n in fleet["nodes"]]
