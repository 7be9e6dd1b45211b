"""Wire envelopes: bad input names the field; committed JSON Schemas equal the models'."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.events.envelopes import CommandMessage, EventEnvelope
from heddle.events.schemas import SCHEMA_MODELS, schema_documents
from heddle.events.testing import make_command, make_event

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "v1"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("aggregate_id", "job.1", "aggregate_id"),  # '.' would split a NATS subject token
        ("aggregate_id", "job:1", "aggregate_id"),  # ':' is not allowed in NATS KV keys
        ("aggregate_type", "1Job", "aggregate_type"),
        ("event_type", "task_placed", "event_type"),
        ("aggregate_version", 0, "aggregate_version"),
    ],
)
def test_bad_event_fields_are_named(field, value, expected):
    data = make_event().model_dump()
    data[field] = value
    with pytest.raises(ValidationError) as info:
        EventEnvelope.model_validate(data)
    assert expected in str(info.value)


def test_unknown_fields_and_unrecognized_issuers_are_refused():
    data = make_command().model_dump()
    with pytest.raises(ValidationError, match="surprise"):
        CommandMessage.model_validate({**data, "surprise": 1})
    data["metadata"]["issued_by"] = "someone"
    with pytest.raises(ValidationError, match="issued_by"):
        CommandMessage.model_validate(data)


def test_envelope_json_round_trip():
    event = make_event("TaskPlaced", payload={"target": "mac-1"}, command_id="c1")
    assert EventEnvelope.model_validate_json(event.model_dump_json()) == event


def test_committed_schemas_match_the_models():
    documents = schema_documents()
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json")) == sorted(documents)
    for filename, text in documents.items():
        assert (SCHEMA_DIR / filename).read_text(encoding="utf-8") == text, (
            f"{filename} is stale: run `uv run heddle events export-schemas`"
        )


def test_export_schemas_command_writes_valid_schemas(tmp_path):
    result = CliRunner().invoke(app, ["events", "export-schemas", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for filename, model in SCHEMA_MODELS.items():
        schema = json.loads((tmp_path / filename).read_text())
        assert set(schema["required"]) >= {"metadata"}
        assert schema["title"] == model.__name__
        assert schema["additionalProperties"] is False


def test_nats_auth_command_writes_a_config_with_every_role(tmp_path):
    out = tmp_path / "auth.conf"
    result = CliRunner().invoke(app, ["events", "nats-auth", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    passwords = re.findall(r'"password": "([^"]+)"', text)
    assert len(passwords) == 4 and len(set(passwords)) == 4
    for role in ("framework", "application", "observer", "workshop"):
        assert f'"user": "{role}"' in text
        assert f"{role}: user={role} password=<" in result.output
    for password in passwords:  # issue 17: no secret on the terminal, not even a part of it
        assert password not in result.output
        assert password[:6] not in result.output and password[-6:] not in result.output
    assert "heddle.events.*.*.InternalFinalized" in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_nats_auth_command_tightens_an_existing_world_readable_file(tmp_path):
    out = tmp_path / "auth.conf"
    out.write_text("previous contents!")  # a space and '!': in no password or config
    out.chmod(0o644)
    result = CliRunner().invoke(app, ["events", "nats-auth", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "previous contents!" not in out.read_text()
    assert out.read_text().startswith("authorization")
