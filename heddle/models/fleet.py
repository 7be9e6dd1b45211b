"""Fleet YAML: the nodes a household or small business owns, its cloud offers and budgets.

`load_fleet(path)` validates a file against the catalog and builds the plain `Fleet` the
optimizer and the twin use. Every error names the file, the line and the field, and what was
expected (a known device id, one of the device's memory sizes, a unique node id, ...).
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from heddle.models import catalog
from heddle.models.errors import FleetError
from heddle.models.fleet_types import Budget, Fleet, Node
from heddle.models.ids import AccountId, NodeId, OwnerId, PowerSource
from heddle.models.installed import parse_installed
from heddle.models.yamlsource import YamlDoc, load_yaml, read_text, validate_doc

__all__ = ["FleetFile", "load_fleet", "parse_fleet", "shipped_fleet_path", "shipped_fleets"]

FLEETS_DIR = Path(__file__).resolve().parent.parent / "data" / "fleets"
"""Where the shipped sample fleets live (package data)."""

DEFAULT_ELECTRICITY_USD_PER_KWH = 0.17
"""US average residential electricity price, 2025 (EIA Electric Power Monthly, rounded)."""

_Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeIn(_Strict):
    """One node as written in fleet YAML."""

    id: _Name
    device: str
    memory_gb: Annotated[float, Field(gt=0)]
    owner: _Name
    trusted_owners: list[_Name] = []
    labels: dict[str, str] = {}
    power_source: PowerSource = PowerSource.AC
    slots: Annotated[int, Field(ge=1, le=256)] = 1
    electricity_usd_per_kwh: Annotated[float, Field(ge=0)] = 0.0
    reserved_memory_gb: Annotated[float, Field(ge=0)] = 0.0
    replaceable: bool = False  # may the advisor propose replacing this machine
    # one performance core's measured speed vs the reference core (the live agent's probe;
    # `heddle fleet export` writes it); None: the catalog's figure for the device
    cpu_speed_relative: Annotated[float, Field(gt=0, le=100)] | None = None
    # that speed over time, measured on a live node (`heddle fleet export --since` writes it):
    # [from Unix s, speed] per interval, in time order; `heddle twin check` replays it
    cpu_speed_profile: list[tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(gt=0, le=100)]]] = []
    # how a live node's steps ran around the performance model (`heddle fleet export` writes
    # them; the twin draws each step's service time with this spread and starts it this long
    # after placing it): none = the model exactly, at once
    service_cv: Annotated[float, Field(ge=0, le=10)] = 0.0
    # that spread's shape: the factor on a step's service time at evenly spaced probabilities
    # from 0 to 1, in increasing order (the twin scales it to mean 1); none: lognormal at service_cv
    service_quantiles: Annotated[list[Annotated[float, Field(gt=0, le=100)]], Field(max_length=101)] = []
    dispatch_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    # the same for a step placed on the node idle (nothing running, its last step ended
    # before): none = dispatch_s. Measured, dispatch_s is then a step's started back to back
    idle_dispatch_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    # what a step started on an idle node (nothing running, its last step ended before the
    # step arrived) takes beyond one started back to back: a waking core; none = no difference
    wake_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    # the features its model servers run (heddle.models.features: tools, embeddings, raw,
    # suffix, ...): work needing another is never placed here; none = every feature
    features: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]] | None = None
    # the catalog models its model servers have, as model:quant (heddle.models.installed): an
    # LLM step for another is never placed here; none = unknown, it may run any
    installed: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9][A-Za-z0-9._-]*$",
                                         max_length=128)]] | None = None


class BudgetIn(_Strict):
    limit_usd: Annotated[float, Field(ge=0)]
    period: Literal["day", "week", "month"] = "month"


class FleetFile(_Strict):
    """The whole fleet file."""

    name: _Name
    electricity_usd_per_kwh: Annotated[float, Field(ge=0)] = DEFAULT_ELECTRICITY_USD_PER_KWH
    cloud_offers: list[str] = []
    budgets: dict[_Name, BudgetIn] = {}
    nodes: list[NodeIn] = Field(min_length=1)


def _hint(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=3)
    return f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"


def _build_node(i: int, n: NodeIn, doc: YamlDoc) -> Node:
    here = ("nodes", i)
    known_devices = catalog.devices()
    if n.device not in known_devices:
        raise FleetError(
            f"{doc.where(here + ('device',))}: nodes[{i}].device: unknown device id {n.device!r}; "
            f"expected a catalog device id ({_hint(n.device, list(known_devices))})"
        )
    spec = known_devices[n.device]
    options = spec.memory_options_gb
    what = "unified memory" if spec.unified_memory else "GPU memory (VRAM)"
    if n.memory_gb > max(options):
        raise FleetError(
            f"{doc.where(here + ('memory_gb',))}: nodes[{i}].memory_gb: {n.memory_gb:g} GB exceeds "
            f"the {max(options)} GB maximum {what} of {spec.id}; expected one of {list(options)}"
        )
    if n.memory_gb not in options:
        raise FleetError(
            f"{doc.where(here + ('memory_gb',))}: nodes[{i}].memory_gb: {n.memory_gb:g} GB is not a "
            f"{what} size {spec.id} is sold with; expected one of {list(options)}"
        )
    if n.reserved_memory_gb >= n.memory_gb:
        raise FleetError(
            f"{doc.where(here + ('reserved_memory_gb',))}: nodes[{i}].reserved_memory_gb: "
            f"{n.reserved_memory_gb:g} GB leaves nothing of the node's {n.memory_gb:g} GB; "
            "expected less than memory_gb"
        )
    times = [t for t, _ in n.cpu_speed_profile]
    if times != sorted(times):
        at = next(k for k in range(1, len(times)) if times[k] < times[k - 1])
        raise FleetError(
            f"{doc.where(here + ('cpu_speed_profile', at))}: nodes[{i}].cpu_speed_profile[{at}]: time "
            f"{times[at]:g} comes before the previous entry's {times[at - 1]:g}; expected entries in time order"
        )
    quantiles = n.service_quantiles
    if len(quantiles) == 1:
        raise FleetError(f"{doc.where(here + ('service_quantiles',))}: nodes[{i}].service_quantiles: one value; "
                         "expected none or at least 2 (the factor at probabilities 0 and 1, and any evenly between)")
    if quantiles != sorted(quantiles):
        at = next(k for k in range(1, len(quantiles)) if quantiles[k] < quantiles[k - 1])
        raise FleetError(
            f"{doc.where(here + ('service_quantiles', at))}: nodes[{i}].service_quantiles[{at}]: {quantiles[at]:g} "
            f"is below the previous entry's {quantiles[at - 1]:g}; expected quantiles in increasing order")
    if n.cpu_speed_relative is not None:  # a measured machine: its own copy of the device
        spec = replace(spec, cpu_single_core_relative=n.cpu_speed_relative)
    return Node(
        id=NodeId(n.id),
        device=spec,
        memory_gb=float(n.memory_gb),
        owner=OwnerId(n.owner),
        trusted_owners=frozenset(OwnerId(o) for o in n.trusted_owners),
        labels=dict(n.labels),
        power_source=n.power_source,
        slots=n.slots,
        electricity_usd_per_kwh=n.electricity_usd_per_kwh,
        reserved_memory_gb=n.reserved_memory_gb,
        replaceable=n.replaceable,
        service_cv=n.service_cv,
        service_quantiles=tuple(float(q) for q in quantiles),
        dispatch_s=n.dispatch_s,
        idle_dispatch_s=n.idle_dispatch_s,
        wake_s=n.wake_s,
        speed_profile=tuple((float(t), float(v)) for t, v in n.cpu_speed_profile),
        features=None if n.features is None else frozenset(n.features),
        installed=None if n.installed is None else parse_installed(n.installed),
    )


def _build(parsed: FleetFile, doc: YamlDoc) -> Fleet:
    seen: dict[str, int] = {}
    nodes = []
    for i, n in enumerate(parsed.nodes):
        if n.id in seen:
            raise FleetError(
                f"{doc.where(('nodes', i, 'id'))}: nodes[{i}].id: duplicate node id {n.id!r} "
                f"(first used by nodes[{seen[n.id]}] on line {doc.line_of(('nodes', seen[n.id], 'id'))}); "
                "expected every node id to be unique"
            )
        seen[n.id] = i
        nodes.append(_build_node(i, n, doc))
    known_offers = catalog.offers()
    offers = []
    for i, offer_id in enumerate(parsed.cloud_offers):
        if offer_id not in known_offers:
            raise FleetError(
                f"{doc.where(('cloud_offers', i))}: cloud_offers[{i}]: unknown offer id {offer_id!r}; "
                f"expected a catalog offer id ({_hint(offer_id, list(known_offers))})"
            )
        if known_offers[offer_id] in offers:
            raise FleetError(f"{doc.where(('cloud_offers', i))}: cloud_offers[{i}]: {offer_id!r} is listed twice")
        offers.append(known_offers[offer_id])
    budgets = {
        AccountId(name): Budget(account=AccountId(name), limit_usd=b.limit_usd, period=b.period)
        for name, b in parsed.budgets.items()
    }
    return Fleet(
        name=parsed.name,
        nodes=tuple(nodes),
        cloud_offers=tuple(offers),
        budgets=budgets,
        electricity_usd_per_kwh=parsed.electricity_usd_per_kwh,
    )


def parse_fleet(text: str, source: str = "<fleet>") -> Fleet:
    """Validate fleet YAML `text`; `source` names it in errors (usually the file path)."""
    doc = load_yaml(text, source, FleetError)
    parsed = validate_doc(FleetFile, doc, FleetError, "name, nodes, ...")
    return _build(parsed, doc)


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet YAML file (FleetError names file, line and field)."""
    p = Path(path)
    return parse_fleet(read_text(p, FleetError, "fleet file"), str(p))


def shipped_fleets() -> list[str]:
    """Names of the sample fleets shipped as package data."""
    return sorted(p.stem for p in FLEETS_DIR.glob("*.yaml"))


def shipped_fleet_path(name: str = "demo") -> Path:
    """Path of a shipped sample fleet ("demo", "small", "office")."""
    path = FLEETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FleetError(f"no shipped fleet named {name!r}; expected one of {shipped_fleets()}")
    return path
