"""Workload slices and unit types: the two axes of the analytic sizing model.

A slice groups requests that a device serves alike (kind, model, quantization, token-size
bucket, deadline class, privacy and - for personal work - owner), as Melange (Griggs et al.,
2024) slices requests by size and SLO. A unit type is one kind of machine (device, memory,
owner and trust): the current fleet's nodes grouped, or a catalog device one could buy. For
each (slice, unit type) pair the performance model gives the service time, which says whether
the unit can serve the slice within its deadline and how much of the unit one request uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from heddle.advisor.lookup import node_model
from heddle.advisor.settings import DAYS_PER_MONTH
from heddle.advisor.workload import SECONDS_PER_DAY
from heddle.models import catalog, perf
from heddle.models.cost import api_cost_usd
from heddle.models.fleet_types import Fleet, Node
from heddle.models.ids import OfferKind
from heddle.models.specs import CloudOffer

__all__ = [
    "DEADLINE_EDGES_S",
    "TOKEN_EDGES",
    "PairTable",
    "Slice",
    "UnitType",
    "cloud_usd_per_request",
    "make_slices",
    "pair_table",
    "row_keys",
    "service_seconds",
    "unit_types_of",
]

TOKEN_EDGES = (512, 2048, 8192)
"""Total-token bucket edges: short chat turns, long chats, RAG-size prompts, long documents
(the Azure 2023 code/conv traces put their medians near 1-2k context tokens)."""

DEADLINE_EDGES_S = (10.0, 60.0, 600.0)
"""Deadline classes: interactive (<= 10 s), near-line (<= 1 min), batch (<= 10 min), later."""

TAIL_PERCENTILE = 90.0
"""A unit can serve a slice when the slice's p90-sized request meets its tightest deadline."""

MAX_SLICES = 400
"""Keep the sizing model small: rarer slices beyond this are merged by dropping the owner."""


@dataclass(slots=True)
class Slice:
    key: str
    kind: str  # "llm" | "processor"
    model: str
    quant: str
    prompt_tokens: float  # mean
    output_tokens: float
    tail_prompt_tokens: float  # p90
    tail_output_tokens: float
    cpu_seconds: float  # processor steps: mean
    memory_gb: float  # processor steps: max working memory
    privacy: str
    owner: str  # the owner for personal slices, "" otherwise
    deadline_s: float  # tightest relative deadline, inf if none
    count: int  # requests in the trace
    per_month: float  # requests per month at the trace's average rate
    design_rate_per_s: float  # the rate the sizing model provisions for (peak hours)
    miss_usd: float = 0.0  # mean value of one of its requests not done in time (advisor.value)


@dataclass(frozen=True, slots=True)
class UnitType:
    """Identical machines: `node` is a representative (its id is the first node's)."""

    key: str
    node: Node
    count: int  # units present (existing) or the most one may buy (purchase option)
    price_usd: float  # per unit; 0 for machines already owned
    electricity_usd_per_kwh: float


def _bucket(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    return np.digitize(values, edges, right=True)


def _key_frame(df: pd.DataFrame, values: np.ndarray | None = None) -> pd.DataFrame:
    total = (df["prompt_tokens"].to_numpy(np.int64) + df["output_tokens"].to_numpy(np.int64))
    deadline = df["deadline_s"].to_numpy(np.float64)
    privacy = df["privacy"].astype(str).to_numpy()
    return pd.DataFrame({
        "kind": df["kind"].astype(str).to_numpy(),
        "model": df["model"].astype(str).to_numpy(),
        "quant": df["quant"].astype(str).to_numpy(),
        "tok": _bucket(total, TOKEN_EDGES),
        "dl": np.where(np.isfinite(deadline), _bucket(np.nan_to_num(deadline), DEADLINE_EDGES_S), 9),
        "privacy": privacy,
        "owner": np.where(privacy == "personal", df["owner"].astype(str).to_numpy(), ""),
        "p": df["prompt_tokens"].to_numpy(np.float64),
        "o": df["output_tokens"].to_numpy(np.float64),
        "cpu": df["cpu_seconds"].to_numpy(np.float64) if "cpu_seconds" in df else 0.0,
        "mem": df["memory_gb"].to_numpy(np.float64) if "memory_gb" in df else 0.0,
        "deadline": np.where(np.isfinite(deadline), deadline, np.inf),
        "val": np.zeros(len(df)) if values is None else np.asarray(values, np.float64),
    })


def _key(kind, model, quant, tok, dl, privacy, owner) -> str:
    return f"{kind}|{model}:{quant}|tok{tok}|dl{dl}|{privacy}|{owner}"


def row_keys(df: pd.DataFrame) -> np.ndarray:
    """The slice key of every row (object array)."""
    g = _key_frame(df)
    return np.array([_key(*t) for t in zip(g["kind"], g["model"], g["quant"], g["tok"], g["dl"],
                                           g["privacy"], g["owner"])], dtype=object)


def make_slices(df: pd.DataFrame, peak_factor: float, values: np.ndarray | None = None) -> list[Slice]:
    """Group a trace into slices; `peak_factor` = design hourly rate / average rate; `values`
    per row: what the request is worth if not done in time (`advisor.value`)."""
    duration_s = max(float(df["arrival_s"].max()), SECONDS_PER_DAY / 24)
    months = duration_s / SECONDS_PER_DAY / DAYS_PER_MONTH
    g = _key_frame(df, values)
    keys = ["kind", "model", "quant", "tok", "dl", "privacy", "owner"]
    agg = g.groupby(keys, sort=True, observed=True).agg(
        count=("p", "size"), p=("p", "mean"), o=("o", "mean"),
        tp=("p", lambda s: np.percentile(s, TAIL_PERCENTILE)),
        to=("o", lambda s: np.percentile(s, TAIL_PERCENTILE)),
        cpu=("cpu", "mean"), mem=("mem", "max"), deadline=("deadline", "min"), val=("val", "mean"),
    ).reset_index()
    out = []
    for r in agg.itertuples(index=False):
        rate = r.count / duration_s
        out.append(Slice(
            key=_key(r.kind, r.model, r.quant, r.tok, r.dl, r.privacy, r.owner),
            kind=r.kind, model=r.model, quant=r.quant,
            prompt_tokens=float(r.p), output_tokens=float(r.o),
            tail_prompt_tokens=float(r.tp), tail_output_tokens=float(r.to),
            cpu_seconds=float(r.cpu), memory_gb=float(r.mem), privacy=r.privacy, owner=r.owner,
            deadline_s=float(r.deadline), count=int(r.count), per_month=r.count / months,
            design_rate_per_s=rate * peak_factor, miss_usd=float(r.val),
        ))
    out.sort(key=lambda s: -s.count)
    return out[:MAX_SLICES] if len(out) > MAX_SLICES else out


def unit_types_of(fleet: Fleet, electricity_usd_per_kwh: float | None = None) -> list[UnitType]:
    """The fleet's nodes grouped into unit types (same device, memory, owner, trust, slots)."""
    groups: dict[tuple, list[Node]] = {}
    for n in fleet.nodes:
        k = (n.device.id, n.memory_gb, n.owner, n.trusted_owners, n.slots, n.reserved_memory_gb,
             n.power_source)
        groups.setdefault(k, []).append(n)
    units = []
    for nodes in groups.values():
        n0 = nodes[0]
        price = electricity_usd_per_kwh if electricity_usd_per_kwh is not None else fleet.price_usd_per_kwh(n0)
        units.append(UnitType(f"have:{n0.id}x{len(nodes)}", n0, len(nodes), 0.0, price))
    return units


def cloud_usd_per_request(offers: tuple[CloudOffer, ...], prompt: float, output: float, model: str = "") -> float:
    """One request's price on the fleet's cloud (`models.cost.api_cost_usd`: catalog prices,
    long-context rates): a request naming a catalog API offer as its model runs on that offer
    alone (inf when the fleet does not list it); any other, the cheapest API offer's (inf when
    no API offer is allowed)."""
    apis = [o for o in offers if o.kind is OfferKind.API]
    if model in catalog.api_offers():
        apis = [o for o in apis if o.id == model]
    return min((api_cost_usd(o, prompt, output) for o in apis), default=math.inf)


@dataclass(slots=True)
class PairTable:
    """Per (slice, unit type): may it serve, seconds per request, energy USD per request."""

    feasible: np.ndarray  # bool [S, U]
    seconds: np.ndarray  # float [S, U] (inf when infeasible)
    energy_usd: np.ndarray  # float [S, U] above idle
    idle_usd_per_month: np.ndarray  # float [U] per unit
    cloud_usd: np.ndarray  # float [S] per request, inf when the slice may not leave the fleet


def service_seconds(unit: UnitType, s: Slice, tail: bool) -> float:
    node = unit.node
    if s.kind != "llm":
        if s.memory_gb > node.memory_gb - node.reserved_memory_gb:
            return math.inf
        return perf.processor_seconds(node.device, s.cpu_seconds)
    spec = node_model(s.model)
    if spec is None:  # a tier and no model, or an API offer named: only an API runs it
        return math.inf
    if s.quant not in spec.bytes_per_weight:
        return math.inf
    p = s.tail_prompt_tokens if tail else s.prompt_tokens
    o = s.tail_output_tokens if tail else s.output_tokens
    if spec.memory_gb(s.quant, int(p + o)) > node.memory_gb - node.reserved_memory_gb:
        return math.inf
    return perf.llm_step(node.device, spec, s.quant, round(p), round(o)).seconds


def _privacy_ok(unit: UnitType, s: Slice) -> bool:
    return s.privacy != "personal" or unit.node.may_hold_personal_of(s.owner)


def _column_key(u: UnitType) -> tuple:
    n = u.node
    return (n.device.id, n.memory_gb, n.reserved_memory_gb, n.owner, n.trusted_owners, n.slots,
            u.electricity_usd_per_kwh)


def pair_table(slices: list[Slice], units: list[UnitType], offers: tuple[CloudOffer, ...],
               cache: dict | None = None) -> PairTable:
    """Build the table; `cache` (a dict owned by the caller, valid for one slice list) reuses
    the columns of unit types seen before - candidates share most of their machines."""
    n_s, n_u = len(slices), len(units)
    feasible = np.zeros((n_s, n_u), dtype=bool)
    seconds = np.full((n_s, n_u), np.inf)
    energy = np.zeros((n_s, n_u))
    for j, u in enumerate(units):
        key = _column_key(u)
        if cache is not None and key in cache:
            feasible[:, j], seconds[:, j], energy[:, j] = cache[key]
            continue
        dev = u.node.device
        busy_kw = max(dev.typical_power_w - dev.idle_power_w, 0.0) / 1000.0
        for i, s in enumerate(slices):
            if not _privacy_ok(u, s):
                continue
            tail = service_seconds(u, s, tail=True)
            if not math.isfinite(tail) or tail > s.deadline_s:
                continue
            mean = service_seconds(u, s, tail=False)
            feasible[i, j] = True
            seconds[i, j] = mean
            energy[i, j] = mean / 3600.0 * busy_kw * u.electricity_usd_per_kwh
        if cache is not None:
            cache[key] = (feasible[:, j].copy(), seconds[:, j].copy(), energy[:, j].copy())
    idle = np.array([
        u.node.device.idle_power_w / 1000.0 * 24 * DAYS_PER_MONTH * u.electricity_usd_per_kwh
        for u in units
    ])
    cloud = np.array([
        cloud_usd_per_request(offers, s.prompt_tokens, s.output_tokens, s.model)
        if s.privacy == "public" and s.kind == "llm" else math.inf
        for s in slices
    ])
    return PairTable(feasible, seconds, energy, idle, cloud)
