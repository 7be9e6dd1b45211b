"""JSON Schemas of the wire envelopes, exported to ``schemas/v1/*.schema.json``.

The committed files are generated from the pydantic models; a test keeps them equal.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from heddle.events.envelopes import (
    SCHEMA_VERSION,
    CommandMessage,
    EventEnvelope,
    RejectionEnvelope,
)

__all__ = ["SCHEMA_MODELS", "export_schemas", "schema_documents"]

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "event_envelope.schema.json": EventEnvelope,
    "command_message.schema.json": CommandMessage,
    "rejection_envelope.schema.json": RejectionEnvelope,
}
"""File name -> model, for every exported schema."""


def schema_documents(models: dict[str, type[BaseModel]] | None = None) -> dict[str, str]:
    """File name -> schema text (stable: sorted keys, two-space indent, final newline).

    ``models`` defaults to the event envelopes; the live protocol passes its own messages.
    """
    documents = {}
    for filename, model in (SCHEMA_MODELS if models is None else models).items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"heddle/schemas/v{SCHEMA_VERSION}/{filename}",
            **model.model_json_schema(),
        }
        documents[filename] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return documents


def export_schemas(out_dir: Path, models: dict[str, type[BaseModel]] | None = None) -> list[Path]:
    """Write every schema into ``out_dir`` (created if missing); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in schema_documents(models).items():
        path = out_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)  # names may hold a subdirectory
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
