"""Requests users send to the control plane and its replies (subjects ``heddle.v1.submit``,
``heddle.v1.query.<what>``, ``heddle.v1.cancel``, ``heddle.v1.drain``).

Same rules as the agent protocol (heddle.live.protocol): every message carries ``v``,
``sender``, ``seq`` and ``sent_at``; extra fields are refused; an unknown major version, an
oversized message or a wrong schema is refused with a ProtocolError naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.live.protocol import (
    PROTOCOL_VERSION,
    ExecutorSpec,
    ProtocolError,
    TaskSpec,
    read_envelope,
)

__all__ = [
    "CancelRequest",
    "DrainRequest",
    "FleetReply",
    "NodeRow",
    "QueryRequest",
    "Reply",
    "StatusReply",
    "SubmitRequest",
    "SubmitTask",
    "TaskRow",
    "decode_request",
    "decode_request_raw",
    "encode_message",
]

_CONFIG = ConfigDict(extra="forbid", frozen=True)
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=200)]


class _Base(BaseModel):
    model_config = _CONFIG

    v: str = Field(PROTOCOL_VERSION, pattern=r"^\d+\.\d+$")
    sender: str = Field(min_length=1, max_length=200)
    seq: int = Field(0, ge=0)
    sent_at: float = 0.0


class SubmitTask(BaseModel):
    model_config = _CONFIG

    task: TaskSpec
    executor: ExecutorSpec
    after: tuple[str, ...] = ()
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    payload: Any = None


class SubmitRequest(_Base):
    """Tasks of one job (a large file is sent in several requests with the same job id)."""

    type: Literal["submit"] = "submit"
    job_id: Ident
    owner: str = ""
    source: str = ""
    tasks: list[SubmitTask] = Field(min_length=1)
    placement: bool = Field(False, description="Reply only once the core has offered the tasks, "
                            "with each one's placement (`heddle.live.control.waiting`).")
    fresh_job: bool = Field(False, description="Protocol 1.7: the job id is new (drawn at random, "
                            "96 bits): the control plane does not look it up in the event log first. "
                            "Taken from the shared subject only, not from a cluster user's own.")
    early_placement: bool = Field(False, description="Protocol 1.8, with placement: answer as soon "
                                  "as the core has offered the tasks, before the submission is in "
                                  "the event log (not a promise that it will be: see docs/live.md, "
                                  "delivery guarantees). The gateway's requests.")


class QueryRequest(_Base):
    type: Literal["query"] = "query"
    job_id: str | None = None
    limit: int = Field(200, ge=0, le=10_000)
    # fleet: the exported fleet's per-core speeds are measured over the burn steps since then
    since_unix_s: float | None = None


class CancelRequest(_Base):
    type: Literal["cancel"] = "cancel"
    task_id: Ident


class DrainRequest(_Base):
    type: Literal["drain"] = "drain"
    node_id: Ident
    deadline_s: Annotated[float, Field(gt=0)] | None = None


class Reply(_Base):
    """The answer to submit, cancel and drain: ok, or the reason it was refused."""

    type: Literal["reply"] = "reply"
    ok: bool
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class TaskRow(BaseModel):
    model_config = _CONFIG

    task_id: str
    job_id: str
    status: str
    node: str = ""
    attempts: int = 0
    reason: str = ""
    result: Any = None
    predicted_s: float | None = None  # the twin's service time, predicted at placement (shadow)
    actual_s: float | None = None  # the service time the agent measured


class StatusReply(_Base):
    type: Literal["status"] = "status"
    counts: dict[str, int]
    tasks: list[TaskRow] = Field(default_factory=list)
    jobs: dict[str, dict[str, int]] = Field(default_factory=dict)
    refused_messages: dict[str, int] = Field(default_factory=dict)
    shadow: dict[str, Any] = Field(default_factory=dict)  # the running error of shadow predictions


class NodeRow(BaseModel):
    model_config = _CONFIG

    node_id: str
    device: str
    owner: str
    status: str
    slots: int
    running: int
    free_memory_gb: float
    last_report_s_ago: float
    thermal: str = "nominal"
    power: str = "ac"
    speed_relative: float | None = None  # one core's measured speed vs the reference core
    shadow_error: float | None = None  # median |actual/predicted - 1| of recent service times


class BudgetRow(BaseModel):
    model_config = _CONFIG

    account: str
    period: str  # day / week / month
    limit_usd: float
    spent_usd: float  # this period: calls that reported their cost, plus those in flight


class FleetReply(_Base):
    type: Literal["fleet"] = "fleet"
    nodes: list[NodeRow]
    budgets: list[BudgetRow] = Field(default_factory=list)  # the fleet file's budget accounts
    waiting: int = 0
    running: int = 0
    shadow: dict[str, Any] = Field(default_factory=dict)  # the running error of shadow predictions
    fleet_file: dict[str, Any] = Field(default_factory=dict)  # the fleet as fleet YAML (export)


_REQUESTS: dict[str, type[_Base]] = {
    "submit": SubmitRequest,
    "query": QueryRequest,
    "cancel": CancelRequest,
    "drain": DrainRequest,
}


def encode_message(message: _Base) -> bytes:
    return message.model_dump_json().encode()


def decode_request(data: bytes, expect: type[_Base]) -> Any:
    """Bytes -> the expected request, or ProtocolError naming the field."""
    return decode_request_raw(data, expect)[0]


def decode_request_raw(data: bytes, expect: type[_Base]) -> tuple[Any, dict[str, Any]]:
    """Like decode_request, plus the JSON object it was validated from (already-valid data
    a caller may store as is instead of dumping the model again)."""
    raw = read_envelope(data)
    kind = raw.get("type")
    if not isinstance(kind, str) or _REQUESTS.get(kind) is not expect:
        wanted = expect.model_fields["type"].default
        raise ProtocolError("type", f"expected {wanted!r} on this subject, got {kind!r}")
    try:
        return expect.model_validate(raw), raw
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "<message>"
        raise ProtocolError(where, err["msg"]) from None


def decode_reply(data: bytes, expect: type[_Base]) -> Any:
    """A reply from the control plane (the CLI side); ProtocolError if it is not one."""
    try:
        return expect.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ProtocolError(".".join(str(p) for p in err["loc"]) or "<message>", err["msg"]) from None
