"""JSON Schemas of the live wire protocol, written next to the event schemas (``schemas/v1/live/``).

The committed files are generated from the pydantic models in `heddle.live.protocol`; a test
keeps them equal. Regenerate with ``heddle events export-schemas``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from heddle.events.schemas import export_schemas as _export
from heddle.events.schemas import schema_documents as _documents
from heddle.live.protocol import MESSAGE_TYPES

__all__ = ["LIVE_SCHEMA_MODELS", "export_live_schemas", "live_schema_documents"]

LIVE_SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    f"live/{kind}.schema.json": model for kind, model in MESSAGE_TYPES.items()
}
"""File name -> model for every live protocol message (``live/capacity.schema.json``, ...)."""


def live_schema_documents() -> dict[str, str]:
    """File name -> schema text of every live protocol message."""
    return _documents(LIVE_SCHEMA_MODELS)


def export_live_schemas(out_dir: Path) -> list[Path]:
    """Write the live protocol's schemas under ``out_dir`` (``schemas/v1``); returns the paths."""
    return _export(out_dir, LIVE_SCHEMA_MODELS)
