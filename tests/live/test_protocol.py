"""Wire protocol v1: round trips, refusals naming the field, the NodeState mapping, schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heddle.live import protocol as p
from heddle.live.schemas import LIVE_SCHEMA_MODELS, export_live_schemas, live_schema_documents
from heddle.models.ids import (
    NodeStatus,
    OwnerId,
    PowerSource,
    Privacy,
    TaskId,
    TaskKind,
    ThermalState,
)
from heddle.models.task import Task

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "v1"


def capacity(**overrides) -> p.CapacityReport:
    fields = {
        "sender": "agent-1", "seq": 7, "sent_at": 1.5e9, "node_id": "mac-1", "agent_id": "agent-1",
        "hostname": "studio.local", "os": "darwin", "arch": "arm64", "chip": "Apple M2 Ultra",
        "device": "m2-ultra-76",
        "memory": p.Memory(total_gb=192, free_gb=150, unified=True),
        "cpu": p.Cpu(performance_cores=16, efficiency_cores=8, utilization=0.25),
        "gpu": p.Gpu(type="apple", cores=76, utilization=0.1),
        "neural_engine": p.NeuralEngine(cores=32, available=True),
        "thermal": p.Thermal(state=ThermalState.FAIR, throttling=False),
        "power": p.Power(source=PowerSource.AC),
        "labels": {"room": "office"}, "owner": "ana", "trusted_owners": ("bo",),
        "slots": 4, "free_slots": 3, "resident_models": (p.ResidentModel(model="llama-3.1-8b", quant="q4_k_m"),),
        "running": (p.TaskRef(task_id="t1", attempt=0),), "reserved_memory_gb": 16,
    }
    fields.update(overrides)
    return p.CapacityReport(**fields)


def assignment(**overrides) -> p.Assignment:
    task = Task(id=TaskId("t1"), kind=TaskKind.PROCESSOR, cpu_seconds=2.0, privacy=Privacy.PERSONAL,
                owner=OwnerId("ana"), depends_on=("a", "b"))
    fields = {"sender": "control", "seq": 1, "sent_at": 1.0, "node_id": "mac-1", "task": p.TaskSpec.from_task(task),
                  "attempt": 1, "executor": p.ExecutorSpec(kind="burn", options={"iterations": 10}),
                  "payload": {"x": [1, 2]}, "timeout_s": 30, "queued_at": 1.0}
    fields.update(overrides)
    return p.Assignment(**fields)


def timings() -> p.Timings:
    return p.Timings(queued_at=1.0, received_at=1.1, started_at=1.2, finished_at=2.0)


ALL_MESSAGES = [
    capacity(),
    assignment(),
    p.AssignReply(sender="mac-1", seq=2, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                  accepted=False, reason="privacy"),
    p.TaskStarted(sender="mac-1", seq=3, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                  timings=timings()),
    p.TaskFinished(sender="mac-1", seq=4, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                   outcome="ok", result={"echo": "hi"}, timings=timings()),
    p.Control(sender="control", seq=5, sent_at=1.0, node_id="mac-1", action="drain", deadline_s=5),
    p.ControlReply(sender="mac-1", seq=6, sent_at=1.0, node_id="mac-1", action="drain", ok=True),
    p.Left(sender="mac-1", seq=8, sent_at=1.0, node_id="mac-1", reason="drained",
           abandoned=(p.TaskRef(task_id="t9", attempt=0),)),
    p.TokenChunk(sender="mac-1", seq=9, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                 index=3, done=True, outcome="ok", usage={"output_tokens": 4}),
    p.AssignBatch(sender="control", seq=10, sent_at=1.0, node_id="mac-1", assignments=(assignment(),)),
    p.AssignBatchReply(sender="mac-1", seq=11, sent_at=1.0, node_id="mac-1", replies=(
        p.AssignReply(sender="mac-1", seq=12, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                      accepted=True),)),
    p.TaskReports(sender="mac-1", seq=13, sent_at=1.0, node_id="mac-1", reports=(
        p.TaskStarted(sender="mac-1", seq=3, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                      timings=timings()),
        p.TaskFinished(sender="mac-1", seq=4, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                       outcome="ok", result={"echo": "hi"}, timings=timings()))),
    p.ImageRequest(sender="mac-1", seq=14, sent_at=1.0, node_id="mac-1", task_id="t1", attempt=1,
                   sha256="0" * 64, offset=520192),
]


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: m.type)
def test_every_message_round_trips_and_carries_the_version(message):
    data = p.encode(message)
    assert json.loads(data)["v"] == p.PROTOCOL_VERSION
    assert p.decode(data) == message
    assert p.decode(data, type(message)) == message


def test_every_message_type_is_in_the_table_and_exported():
    assert {m.type for m in ALL_MESSAGES} == set(p.MESSAGE_TYPES)
    assert sorted(LIVE_SCHEMA_MODELS) == sorted(f"live/{t}.schema.json" for t in p.MESSAGE_TYPES)


@given(st.builds(
    Task, id=st.text("abc123", min_size=1, max_size=8).map(TaskId), kind=st.sampled_from(TaskKind),
    cpu_seconds=st.floats(0, 1e6), privacy=st.sampled_from(Privacy),
    owner=st.none() | st.sampled_from(["ana", "bo"]).map(OwnerId), priority=st.integers(-5, 5),
    deadline_s=st.none() | st.floats(0, 1e9), depends_on=st.lists(st.sampled_from("xyz")).map(tuple),
))
def test_task_spec_carries_the_optimizer_task_unchanged(task):
    spec = p.TaskSpec.from_task(task)
    assert p.TaskSpec.model_validate_json(spec.model_dump_json()).to_task() == task


def _raw(message, **changes) -> bytes:
    doc = json.loads(p.encode(message))
    doc.update(changes)
    return json.dumps(doc).encode()


BAD_PAYLOADS = {
    "bytes": (b"\xff\xfe not json", "<message>", p.ProtocolError),
    "array": (b"[1, 2]", "<message>", p.ProtocolError),
    "no-version": (b"{}", "v", p.VersionError),
    "major-2": (_raw(ALL_MESSAGES[0], v="2.0"), "v", p.VersionError),
    "bad-version": (_raw(ALL_MESSAGES[0], v="one"), "v", p.VersionError),
    "type": (_raw(ALL_MESSAGES[0], type="teleport"), "type", p.ProtocolError),
    "negative": (_raw(ALL_MESSAGES[0], free_slots=-1), "free_slots", p.ProtocolError),
    "extra": (_raw(ALL_MESSAGES[0], surprise=1), "surprise", p.ProtocolError),
    "subject-token": (_raw(ALL_MESSAGES[0], node_id="a.b"), "node_id", p.ProtocolError),
    "nested": (_raw(ALL_MESSAGES[1], task={"id": "t", "kind": "quantum"}), "task.kind", p.ProtocolError),
    "fraction": (_raw(ALL_MESSAGES[0], cpu={"performance_cores": 1, "utilization": 3}), "cpu.utilization", p.ProtocolError),
    "oversized": (b" " * (p.MAX_MESSAGE_BYTES + 1), "<message>", p.ProtocolError),
}
"""Malformed messages -> (bytes, the field the error names, the error type)."""


@pytest.mark.parametrize(("data", "field", "error"), BAD_PAYLOADS.values(), ids=BAD_PAYLOADS.keys())
def test_bad_payloads_raise_one_error_type_naming_the_field(data, field, error):
    with pytest.raises(error) as info:
        p.decode(data)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize(
    ("data", "field", "error"), BAD_PAYLOADS.values(), ids=BAD_PAYLOADS.keys())
def test_the_one_type_decoder_refuses_the_same_payloads_alike(data, field, error):
    model = p.Assignment if field == "task.kind" else p.CapacityReport
    with pytest.raises(error) as info:
        p.decode_one(data, model)
    assert (info.value.field, type(info.value)) == (field, error)


def test_the_one_type_decoder_reads_every_message_as_decode_does():
    for message in ALL_MESSAGES:
        assert p.decode_one(p.encode(message), type(message)) == message
    assert p.decode_one(_raw(ALL_MESSAGES[0], v="1.9"), p.CapacityReport).v == "1.9"


def test_a_newer_minor_version_is_accepted_and_a_subject_refuses_foreign_types():
    assert p.decode(_raw(ALL_MESSAGES[0], v="1.9")).v == "1.9"
    with pytest.raises(p.ProtocolError) as info:
        p.decode(p.encode(ALL_MESSAGES[0]), p.Assignment)
    assert info.value.field == "type"


def test_an_oversized_message_is_refused_before_it_is_sent():
    with pytest.raises(p.ProtocolError, match="bytes, more than"):
        p.encode(assignment(payload="x" * p.MAX_MESSAGE_BYTES))


def test_capacity_report_maps_onto_the_optimizer_node_state():
    state = p.node_state(capacity(status=NodeStatus.DRAINING, thermal=p.Thermal(
        state=ThermalState.SERIOUS, throttling=True), power=p.Power(source=PowerSource.BATTERY,
        battery_level=0.4)), backlog_s=12.0)
    assert state.node_id == "mac-1"
    assert state.free_memory_gb == 150 - 16
    assert state.free_slots == 3
    assert state.resident_models == frozenset({("llama-3.1-8b", "q4_k_m")})
    assert state.backlog_s == 12.0
    assert state.status is NodeStatus.DRAINING
    assert state.power_source is PowerSource.BATTERY
    assert state.thermal is ThermalState.SERIOUS
    assert state.speed_factor < 1.0
    assert p.node_state(capacity()).speed_factor == 1.0


def test_capacity_report_builds_the_fleet_node_with_owner_and_trust():
    node = p.node_from_report(capacity())
    assert (node.id, node.device.id, node.memory_gb, node.slots) == ("mac-1", "m2-ultra-76", 192, 4)
    assert node.may_hold_personal_of(OwnerId("bo")) and not node.may_hold_personal_of(OwnerId("cy"))
    assert p.node_from_report(capacity(device=None), fallback_device="m1-8").device.id == "m1-8"
    for report in (capacity(device=None), capacity(device="m9-turbo")):
        with pytest.raises(p.ProtocolError) as info:
            p.node_from_report(report)
        assert info.value.field == "device"


def test_report_dedup_id_is_per_task_attempt_and_kind():
    started, finished = ALL_MESSAGES[3], ALL_MESSAGES[4]
    assert p.report_msg_id(started) != p.report_msg_id(finished)
    assert p.report_msg_id(finished) == p.report_msg_id(finished.model_copy(update={"seq": 99}))


def test_subject_table_fills_node_tokens():
    assert p.subject(p.CAPACITY, node="mac-1") == "heddle.v1.capacity.mac-1"
    assert p.all_nodes(p.ASSIGN) == "heddle.v1.assign.*"
    assert all(s.startswith("heddle.v1.report.") for s in p.REPORT_STREAM_SUBJECTS)


def test_committed_live_schemas_match_the_models(tmp_path):
    documents = live_schema_documents()
    assert sorted(f"live/{f.name}" for f in (SCHEMA_DIR / "live").glob("*.schema.json")) == sorted(documents)
    for filename, text in documents.items():
        assert (SCHEMA_DIR / filename).read_text(encoding="utf-8") == text, (
            f"{filename} is stale: run `uv run heddle events export-schemas`"
        )
    for path in export_live_schemas(tmp_path):
        schema = json.loads(path.read_text())
        assert schema["additionalProperties"] is False and "v" in schema["properties"]
