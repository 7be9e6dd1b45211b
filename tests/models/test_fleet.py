"""Fleet YAML: shipped fleets load; bad files are rejected naming file, line and field."""

from pathlib import Path

import pytest

from heddle.models.errors import FleetError
from heddle.models.fleet import load_fleet, parse_fleet, shipped_fleet_path, shipped_fleets
from heddle.models.ids import PowerSource

BASE = """name: test
cloud_offers: [claude-sonnet-4.6]
budgets:
  team: {limit_usd: 20, period: week}
nodes:
  - id: studio
    device: m2-ultra-76
    memory_gb: 192
    owner: alice
    trusted_owners: [bob]
  - id: mini
    device: m4-10
    memory_gb: 16
    owner: bob
"""


def line_of(text: str, needle: str) -> int:
    """1-based line where `needle` (which may span lines) first starts."""
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("name", ["demo", "small", "office"])
def test_shipped_fleets_load(name):
    fleet = load_fleet(shipped_fleet_path(name))
    assert fleet.nodes and fleet.name == name
    for node in fleet.nodes:
        assert node.memory_gb in node.device.memory_options_gb
    assert name in shipped_fleets()


def test_demo_fleet_is_a_realistic_mixed_household():
    fleet = load_fleet(shipped_fleet_path())
    devices = {n.device.id for n in fleet.nodes}
    assert {"m2-ultra-76", "m3-max-40", "jetson-agx-orin-64", "rtx-4090"} <= devices
    assert len({n.owner for n in fleet.nodes}) >= 2
    assert any(n.trusted_owners for n in fleet.nodes)
    assert {o.id for o in fleet.cloud_offers} >= {"claude-haiku-4.5", "claude-opus-4.6", "aws-g5.xlarge"}
    assert fleet.budgets


def test_parse_builds_nodes_budgets_offers():
    fleet = parse_fleet(BASE, "t.yaml")
    studio = fleet.node("studio")
    assert studio.device.id == "m2-ultra-76" and studio.memory_gb == 192
    assert studio.may_hold_personal_of("bob") and not fleet.node("mini").may_hold_personal_of("alice")
    assert fleet.budgets["team"].limit_usd == 20 and fleet.budgets["team"].period == "week"
    assert fleet.offer("claude-sonnet-4.6").price_usd_per_m_input_tokens == 3.0
    assert fleet.node("mini").power_source == PowerSource.AC


@pytest.mark.parametrize(
    "old,new,needle,expect",
    [
        ("device: m4-10", "device: m4-11", "m4-11", r"nodes\[1\]\.device: unknown device id 'm4-11'.*m4-10"),
        ("memory_gb: 16", "memory_gb: 20", "memory_gb: 20", r"nodes\[1\]\.memory_gb: 20 GB is not.*\[16, 24, 32\]"),
        ("memory_gb: 192", "memory_gb: 256", "memory_gb: 256", r"nodes\[0\]\.memory_gb: 256 GB exceeds the 192 GB"),
        ("id: mini", "id: studio", "id: studio\n    device: m4", r"nodes\[1\]\.id: duplicate node id 'studio'"),
        ("[claude-sonnet-4.6]", "[claude-sonet-4.6]", "cloud_offers", r"cloud_offers\[0\]: unknown offer id.*claude-sonnet-4\.6"),
        ("period: week", "period: fortnight", "period", r"budgets\.team\.period"),
        ("owner: bob\n", "owner: bob\n    slots: 0\n", "slots: 0", r"nodes\[1\]\.slots: Input should be greater than or equal to 1"),
        ("owner: bob\n", "owner: bob\n    colour: red\n", "colour", r"nodes\[1\]\.colour: unknown field"),
        ("owner: bob\n", "owner: bob\n    power_source: solar\n", "solar", r"nodes\[1\]\.power_source: .*'ac'.*'battery'"),
        ("    owner: bob\n", "", "- id: mini", r"nodes\[1\]\.owner: required field is missing"),
    ],
)
def test_bad_field_error_names_file_line_and_field(old, new, needle, expect):
    text = BASE.replace(old, new, 1)
    assert text != BASE
    line = line_of(text, needle)
    with pytest.raises(FleetError, match=rf"^bad\.yaml:{line}: {expect}"):
        parse_fleet(text, "bad.yaml")


def test_yaml_syntax_error_names_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nnodes:\n  - id: [a\n    device: m4-10\n")
    with pytest.raises(FleetError, match=rf"{path}:\d+: not valid YAML"):
        load_fleet(path)


def test_missing_file_is_a_fleet_error(tmp_path: Path):
    with pytest.raises(FleetError, match="cannot read fleet file"):
        load_fleet(tmp_path / "nope.yaml")


def test_unknown_shipped_fleet_lists_the_known_ones():
    with pytest.raises(FleetError, match="demo"):
        shipped_fleet_path("nope")


def test_a_key_given_twice_is_an_error_not_a_silent_override():
    text = BASE.replace("memory_gb: 16\n", "memory_gb: 16\n    memory_gb: 24\n")
    with pytest.raises(FleetError, match=rf"^d\.yaml:{line_of(text, 'memory_gb: 24')}: 'memory_gb' is given twice .*line {line_of(text, 'memory_gb: 16')}"):
        parse_fleet(text, "d.yaml")
