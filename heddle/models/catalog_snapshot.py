"""The shipped catalog as built specs in one JSON file, so reading it needs no pydantic or YAML.

`heddle/data/catalog/catalog.snapshot.json` holds the specs `catalog_yaml.build_catalog` makes
from the shipped YAML, plus a checksum of everything they were made from: the YAML files and
the modules holding the rules that turn YAML into specs. `read()` returns None when that
digest differs from today's sources (an edited YAML file or rule), and the caller validates
the YAML instead: a stale snapshot costs start-up time, never a wrong value. Regenerate it with

    uv run python -m heddle.models.catalog_snapshot

(tests/models/test_catalog_snapshot.py fails, saying so, while the committed one is stale).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from enum import Enum
from pathlib import Path
from typing import Any

from heddle.models.ids import OfferKind, Tier
from heddle.models.specs import Catalog, CloudOffer, DeviceSpec, ModelSpec

__all__ = ["SNAPSHOT", "encode", "read", "sources_digest", "write"]

_HERE = Path(__file__).resolve().parent
_CATALOG_DIR = _HERE.parent / "data" / "catalog"
SNAPSHOT = _CATALOG_DIR / "catalog.snapshot.json"
"""The committed snapshot (package data next to the YAML it is built from)."""
_SOURCES = (
    _CATALOG_DIR / "devices.yaml",
    _CATALOG_DIR / "models.yaml",
    _CATALOG_DIR / "offers.yaml",
    _HERE / "catalog_yaml.py",  # the schemas and the rules deriving specs (FP32 from GPU cores...)
    _HERE / "specs.py",  # the fields the snapshot stores
    _HERE / "ids.py",  # the enum values it stores
)
"""Everything the built specs depend on; any byte changed in one makes the snapshot stale."""
_FORMAT = 1
"""Bumped when the layout of the JSON changes."""

_DECODE: dict[type, dict[str, Any]] = {
    DeviceSpec: {"memory_options_gb": tuple},
    ModelSpec: {"tier": Tier},
    CloudOffer: {"kind": OfferKind, "tier": Tier},
}
"""Per spec type, the fields JSON cannot hold as they are (tuples, enums) and how to rebuild them."""


def sources_digest() -> str:
    """CRC-32 of the names and bytes of the snapshot's sources, as 8 hex digits.

    It tells an edited source from the one the snapshot was built from (it does not have to
    resist forgery: the snapshot ships inside the package it checks); hashlib would add ~3 ms
    of OpenSSL start-up to every `heddle catalog` command."""
    crc = 0
    for path in _SOURCES:
        crc = zlib.crc32(path.name.encode() + b"\0" + path.read_bytes() + b"\0", crc)
    return f"{crc:08x}"


def _plain(spec: object) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Enum) else v for k, v in dataclasses.asdict(spec).items()}


def encode(catalog: Catalog, digest: str) -> str:
    """The snapshot text for `catalog` built from sources with this digest: deterministic, one
    spec per line (a changed figure is a one-line diff)."""
    head = {"format": _FORMAT, "sources_crc32": digest}
    parts = [json.dumps(head)[:-1]]
    for kind, table in (("devices", catalog.devices), ("models", catalog.models), ("offers", catalog.offers)):
        rows = ",\n  ".join(json.dumps(_plain(s), ensure_ascii=False) for s in table.values())
        parts.append(f'"{kind}": [\n  {rows}\n ]')
    return ",\n ".join(parts) + "\n}\n"


def _specs(cls: type, rows: list[dict[str, Any]]) -> dict[str, Any]:
    fix = _DECODE[cls]
    out = {}
    for row in rows:
        spec = cls(**{k: fix[k](v) if k in fix else v for k, v in row.items()})
        out[spec.id] = spec
    return out


def read(path: Path = SNAPSHOT) -> Catalog | None:
    """The catalog in the snapshot at `path`, or None if it is missing, unreadable or stale."""
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("format") != _FORMAT or doc.get("sources_crc32") != sources_digest():
            return None
        return Catalog(
            devices=_specs(DeviceSpec, doc["devices"]),
            models=_specs(ModelSpec, doc["models"]),
            offers=_specs(CloudOffer, doc["offers"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # whatever is wrong with it, the YAML is the source: validate that instead


def write(path: Path = SNAPSHOT) -> None:
    """Build the catalog from the shipped YAML (validated) and write its snapshot to `path`."""
    from heddle.models.catalog_yaml import build_catalog

    path.write_text(encode(build_catalog(), sources_digest()), encoding="utf-8")


if __name__ == "__main__":
    write()
    print(f"wrote {SNAPSHOT}")
