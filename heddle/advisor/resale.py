"""What a replaced machine sells for used: the catalog's used-market figure (with its source and
date, `heddle/data/catalog/resale.yaml`) or the owner's own figure (`resale_usd` setting).

A figure is for one configuration; a node with a different memory size resells in proportion
to that configuration's new price (`lookup.machine_price_usd`). A machine with no figure
resells for 0 and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from heddle.advisor.errors import AdvisorError
from heddle.advisor.lookup import machine_price_usd
from heddle.models.fleet_types import Node

__all__ = ["RESALE_FILE", "Resale", "resale_of", "resale_table"]

RESALE_FILE = Path(__file__).resolve().parent.parent / "data" / "catalog" / "resale.yaml"
"""The shipped used-market figures (package data)."""


class _EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str
    memory_gb: float = Field(gt=0)
    used_usd: float = Field(ge=0)
    as_of: str = Field(min_length=4)
    source: str = Field(min_length=10)


class _FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resale: list[_EntryIn]


@dataclass(frozen=True, slots=True)
class Resale:
    usd: float
    source: str  # where the figure comes from, with its date


@lru_cache(maxsize=4)
def resale_table(path: Path = RESALE_FILE) -> dict[str, _EntryIn]:
    """Device id -> its used-market entry (validated; an error names the file and field)."""
    from heddle.models.errors import CatalogError
    from heddle.models.yamlsource import load_yaml, read_text, validate_doc

    try:
        doc = load_yaml(read_text(path, CatalogError, "resale file"), str(path), CatalogError)
        parsed = validate_doc(_FileIn, doc, CatalogError, "resale: [{device, memory_gb, used_usd, as_of, source}]")
    except CatalogError as exc:
        raise AdvisorError(str(exc)) from exc
    return {e.device: e for e in parsed.resale}


def resale_of(node: Node, overrides: dict[str, float]) -> Resale:
    """What `node` sells for used: the owner's figure, else the catalog's, else 0."""
    if node.id in overrides:
        return Resale(float(overrides[node.id]), "your figure (--resale)")
    entry = resale_table().get(node.device.id)
    if entry is None:
        return Resale(0.0, f"no used-market figure for {node.device.id}: counted as 0")
    scale = machine_price_usd(node.device, node.memory_gb) / machine_price_usd(node.device, entry.memory_gb)
    return Resale(round(entry.used_usd * scale, 2), f"{entry.source} (as of {entry.as_of})")
