"""Wire protocol v1 of the live runtime: every message between agents and the control plane.

Each message is a pydantic model (extra fields refused) carrying the protocol version ``v``,
its ``type``, the sender's id and a per-sender sequence number. ``encode()`` and ``decode()``
are the only way bytes become messages: ``decode`` refuses an unknown major version, an
oversized payload, bad JSON and a wrong schema with one error type, `ProtocolError`, whose
``field`` names the offending field. The subject table below is authoritative.

Changes to v1 are additive only (new optional fields, new message types); a minor bump is
announced here. Receivers with extra fields forbidden must be upgraded before senders use a
new field: upgrade the control plane first, then the agents.

- 1.0: first version.
- 1.1: `TokenChunk` on ``heddle.v1.tokens.<task>`` (an LLM attempt's output as it is produced,
  for assignments whose executor options set ``stream_tokens``).
- 1.2: `AssignBatch` / `AssignBatchReply` on ``heddle.v1.assign.<node>`` (many assignments in
  one request, one answer each); `CapacityReport.accepts` lists the message types beyond 1.0
  an agent takes, and the control plane sends batches only to agents that list
  ``assign_batch`` (agents may be older than the control plane). `TaskReports` on
  ``heddle.v1.report.<node>``: an agent's outbox sends the reports it has waiting as one
  JetStream message (the control plane is upgraded first, so it always understands it).
- 1.3: ``CapacityReport.measured`` (optional): what an agent on hardware the catalog does not
  list measured about itself; such a node joins as a generic device built from it.
- 1.4: ``heddle.v1.user.<user>.<what>`` (`USER`): a cluster user's own submit, status and
  cancel requests (the messages of `SUBMIT`, ``QUERY`` status and `CANCEL`); the control
  plane answers them only for that user's jobs.
- 1.5: ``CapacityReport.cloud_offers`` (optional): the catalog API offers an agent can call (it
  holds the key); the control plane sends cloud work for those offers there, as an ``llm``
  assignment whose options name ``backend: claude`` and the ``offer``, and the agent runs such
  a call beside its slots (it waits on the network, not on the machine).
- 1.6: `TokenChunk`s move to ``heddle.v1.tokens.<node>.<task>``: the node running the
  attempt is in the subject, so the cluster's authorization lets an agent publish chunks only
  as itself, and the gateway takes a task's chunks only from the node and attempt the control
  plane placed it on. (The gateway is upgraded with the control plane; an older agent's
  chunks on ``tokens.<task>`` are not heard, and its answers reach callers whole, from the
  task's completion event.)
- 1.7: ``SubmitRequest.fresh_job`` (optional, `heddle.live.control.messages`): the submitter
  drew the job id at random (the gateway: 96 bits per request), so the control plane skips
  looking the job up in the event log, a JetStream round trip before every gateway task.
- 1.8: ``SubmitRequest.early_placement`` (optional, with ``placement``): the control plane
  answers as soon as the core has offered the tasks, before their ``TaskSubmitted`` is in the
  log (the gateway: its caller's answer starts from the placement, not from a JetStream
  acknowledgement that was the last thing before the first token at the tail).
- 1.9: ``TokenChunk.tool_calls`` (optional, on an attempt's closing chunk): the tool (function)
  calls the model made, as `ToolCall`s; left out of the JSON when there are none, so every other
  chunk is byte for byte a 1.8 one. The tools themselves travel in the task's payload (a free
  JSON object): an agent older than 1.9 does not read them and answers in text, as before.
- 1.10: ``TokenChunk.embeddings`` (optional): an embedding attempt's vectors, in input order,
  continuing from the attempt's chunks before it, each chunk under `MAX_MESSAGE_BYTES`
  (`EMBEDDING_CHUNK_BYTES`); the closing chunk's ``usage`` counts them (``embeddings``). Left
  out of the JSON when absent, so every other chunk is byte for byte a 1.9 one. The inputs
  travel in the task's payload (``embed``); the vectors never go in a result (the task's
  ``TaskFinished`` and ``TaskCompleted`` carry the counts only: no floats in the durable log).
- 1.11: `ImageRequest` on ``heddle.v1.images.<node>.<task>`` (`IMAGES`): an agent asks the
  gateway for a piece of an image of a task it runs; the answer is the image's raw bytes from
  ``offset`` (at most `IMAGE_CHUNK_BYTES`; none past its end), or an empty answer with the
  `IMAGE_REFUSED_HEADER` header saying why. The task's payload carries references to its
  images (``images``: sha256, media type, size), never their bytes, so no image goes in a
  message of the durable log. An agent older than 1.11 does not read them (its backend sends
  the messages' image indices on to its server): from 1.13 the control plane keeps image work
  from it (the ``images`` feature).
- 1.12: ``TokenChunk.thinking`` (optional): a piece of a reasoning model's thinking, streamed
  apart from its answer (``text`` empty on such a chunk), in order with the answer's chunks
  (the same ``index`` count). Left out of the JSON when absent, so every other chunk is byte
  for byte a 1.11 one. The request's ``think`` travels in the task's payload: an agent older
  than 1.12 does not read it (the model thinks as its server's default says, its thinking
  dropped or in the text as before).
- 1.13: ``CapacityReport.features`` (optional): what each of the agent's LLM backends runs
  beyond a plain chat, by backend name (``{"ollama": ["embeddings", "images", "raw", "suffix",
  "tools"], "claude": ["images", "tools"]}``: heddle.live.features); the control plane places
  a task needing a feature (read from its payload) only on a node whose local backends offer
  it, or an API whose agents' ``claude`` backends do. Left out of the JSON when absent: an
  agent that reports none (older) runs what its version implies (1.9 tools; 1.10 also
  embeddings, raw prompts and fill in the middle; 1.11 also images).
- 1.14: ``CapacityReport.installed`` (optional): the catalog (model, quant) pairs the node's
  local model servers have (their inventories, loaded or not; heddle.models.installed); the
  control plane places an LLM step only on a node whose set has its model in its quant. Left
  out of the JSON when absent: an agent that reports none (older, or a server not asked yet)
  may run any model, as before.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.models.fleet_types import Node
from heddle.models.generic import MeasuredFigures, generic_device
from heddle.models.ids import (
    AccountId,
    ModelId,
    NodeId,
    NodeStatus,
    OwnerId,
    PowerSource,
    Privacy,
    TaskId,
    TaskKind,
    ThermalState,
    Tier,
)
from heddle.models.state import NodeState
from heddle.models.task import Task

PROTOCOL_VERSION = "1.14"
"""Version every message carries in ``v``: "major.minor"; receivers refuse another major."""
PROTOCOL_MAJOR = 1
MAX_MESSAGE_BYTES = 512 * 1024
"""Largest message accepted: half of nats-server's default max_payload (1 MiB), so a message
that passes here always fits on the wire with headers."""
CLOUD_BACKEND = "claude"
"""The backend (and executor kind) of calls to a cloud API: the only cloud an agent calls."""
THROTTLED_SPEED_FACTOR = 0.7
"""Speed factor assumed while a node reports thermal throttling. An assumption (sustained
clocks under serious thermal pressure drop by roughly a quarter to a third), to be replaced
by the twin-fidelity loop's measurement."""
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
"""Node and agent ids are one NATS subject token: no '.', '*', '>' or spaces."""

# --- subjects ---------------------------------------------------------------------------

SUBJECT_PREFIX = "heddle.v1"
CAPACITY = SUBJECT_PREFIX + ".capacity.{node}"
"""agent -> control plane, core NATS, every report interval and on any change of free slots."""
ASSIGN = SUBJECT_PREFIX + ".assign.{node}"
"""control plane -> agent, request/reply: the reply is an `AssignReply` (accepted or refused)."""
REPORT = SUBJECT_PREFIX + ".report.{node}"
"""agent -> control plane, JetStream stream `REPORT_STREAM`: `TaskStarted` / `TaskFinished`,
deduplicated by `report_msg_id` (task, attempt, kind)."""
CONTROL = SUBJECT_PREFIX + ".control.{node}"
"""control plane -> agent: `Control` (drain, cancel); request/reply or plain publish."""
LEFT = SUBJECT_PREFIX + ".left.{node}"
"""agent -> control plane, core NATS: `Left` once drained (or after the drain deadline)."""
SUBMIT = SUBJECT_PREFIX + ".submit"
"""user -> control plane, request/reply (messages defined by the control plane)."""
QUERY = SUBJECT_PREFIX + ".query.{what}"
"""user -> control plane, request/reply: status, fleet (messages defined by the control plane)."""
CANCEL = SUBJECT_PREFIX + ".cancel"
"""user -> control plane, request/reply: cancel a task."""
DRAIN = SUBJECT_PREFIX + ".drain"
"""user -> control plane, request/reply: drain a node."""
USER = SUBJECT_PREFIX + ".user.{user}.{what}"
"""a cluster user -> control plane, request/reply (1.4): ``what`` is one of `USER_REQUESTS`.
nats-server lets a user publish only beneath its own name, so the control plane takes the
requester from ``{user}`` and answers status and cancel only for the jobs that user submitted."""
USER_REQUESTS = ("submit", "status", "cancel")
TOKENS = SUBJECT_PREFIX + ".tokens.{node}.{task}"
"""agent -> whoever submitted the task (the gateway), core NATS, best effort: `TokenChunk`s of
an LLM attempt as they are produced, then one with ``done`` set, when the assignment's executor
options set ``stream_tokens`` (`STREAM_TOKENS_OPTION`). ``{node}`` is the publishing agent's
node (1.6: the only one its credentials may publish beneath). The task's outcome is still the
control plane's (its reports and events): a lost chunk is seen as a gap in ``index``."""
IMAGES = SUBJECT_PREFIX + ".images.{node}.{task}"
"""agent -> the gateway that holds the task's images, request/reply (1.11): `ImageRequest`, answered
with the bytes (or refused: `IMAGE_REFUSED_HEADER`). ``{node}`` is the asking agent's (the only
one its credentials may publish beneath); the gateway answers only the node and attempt the
control plane placed the task on."""
IMAGE_CHUNK_BYTES = MAX_MESSAGE_BYTES - 8 * 1024
"""The most image bytes one answer to an `ImageRequest` carries."""
IMAGE_REFUSED_HEADER = "Heddle-Refused"
"""The header of a refused `ImageRequest`'s (empty) answer: the reason."""
STREAM_TOKENS_OPTION = "stream_tokens"
"""`ExecutorSpec.options` key: true asks the agent to publish the attempt's output on `TOKENS`."""

REPORT_STREAM = "HEDDLE_LIVE_REPORTS"
"""JetStream stream holding every task report (subjects ``heddle.v1.report.>``)."""
REPORT_STREAM_SUBJECTS = (SUBJECT_PREFIX + ".report.>",)
REPORT_DUPLICATE_WINDOW_S = 120.0
"""Dedup window of the report stream: longer than any agent's retry of an unacked report."""
REPORT_STREAM_MAX_AGE_S = 7 * 24 * 3600.0
"""Reports older than a week are dropped: long enough for any control-plane outage."""


def subject(template: str, **tokens: str) -> str:
    """Fill a subject template (``subject(CAPACITY, node="mac-1")``); any token may be "*"."""
    return template.format(**tokens)


def all_nodes(template: str) -> str:
    """The wildcard subject matching every node for a per-node template."""
    return template.format(node="*")


# --- errors -------------------------------------------------------------------------------


class ProtocolError(ValueError):
    """A wire message was refused. Receivers count and log it and keep running.

    ``field`` is the dotted path of the offending field ("<message>" for the whole message).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class VersionError(ProtocolError):
    """A message with a major protocol version this process does not speak."""


# --- message parts ------------------------------------------------------------------------

_CONFIG = ConfigDict(extra="forbid", frozen=True)
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=0)]
Ident = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=128)]
FeatureName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]


class _Part(BaseModel):
    model_config = _CONFIG


class Memory(_Part):
    total_gb: NonNegative
    free_gb: NonNegative
    unified: bool = Field(description="CPU and GPU share one memory (Apple Silicon, Jetson).")


class Cpu(_Part):
    performance_cores: Count
    efficiency_cores: Count = 0
    utilization: Fraction = Field(description="0..1 over all cores.")
    speed_relative: Annotated[float, Field(gt=0)] | None = Field(
        None, description="One core's measured speed vs the reference core: the burn probe's at start, "
                          "then the agent's burn steps' over the last minute.")
    burn_iterations: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Burn iterations the agent's steps did since it started (a running total).")
    burn_seconds: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Wall seconds those iterations took in the workers: the speed over a window "
                          "is the difference of two reports' totals.")


class Gpu(_Part):
    type: str = Field(description="'apple', 'nvidia', 'none', ...")
    cores: Count = 0
    memory_gb: NonNegative = Field(0.0, description="VRAM; 0 for unified memory.")
    utilization: Fraction | None = None


class NeuralEngine(_Part):
    cores: Count = 0
    available: bool = False


class Thermal(_Part):
    state: ThermalState = ThermalState.NOMINAL
    throttling: bool = False


class Power(_Part):
    source: PowerSource = PowerSource.AC
    battery_level: Fraction | None = Field(None, description="0..1; None without a battery.")


class MeasuredDevice(MeasuredFigures):
    """What an agent on hardware the catalog does not list measured about itself at start
    (heddle.live.agent.benchmark); the control plane predicts the node from these figures."""

    model_config = _CONFIG

    duration_s: NonNegative = Field(description="How long the measurement took.")
    measured_at: float = Field(description="When (Unix seconds).")
    cached: bool = Field(False, description="Read from the agent's cache rather than measured now.")

    def figures(self) -> MeasuredFigures:
        return MeasuredFigures.model_validate(self.model_dump(include=set(MeasuredFigures.model_fields)))


class ResidentModel(_Part):
    model: str
    quant: str


class TaskRef(_Part):
    task_id: str
    attempt: Count


class TaskSpec(_Part):
    """The optimizer's `Task` on the wire (same fields, same meaning).

    Written out rather than derived from the task-file model (`heddle.optimizer.taskfile`):
    importing the optimizer costs the agent seconds of start-up (OR-Tools, SciPy).
    """

    id: str = Field(min_length=1, max_length=256)
    kind: TaskKind
    arrival_s: float = 0.0
    model: str | None = None
    quant: str | None = None
    prompt_tokens: Count = 0
    output_tokens: Count = 0
    cpu_seconds: NonNegative = 0.0
    memory_gb: NonNegative = 0.0
    privacy: Privacy = Privacy.PUBLIC
    owner: str | None = None
    deadline_s: float | None = None
    priority: int = 0
    tier: Tier | None = None
    account: str | None = None
    pipeline_id: str | None = None
    stage: str | None = None
    depends_on: tuple[str, ...] = ()

    @classmethod
    def from_task(cls, task: Task) -> TaskSpec:
        return cls(**{name: getattr(task, name) for name in cls.model_fields})

    def to_task(self) -> Task:
        return Task(
            id=TaskId(self.id),
            kind=self.kind,
            arrival_s=self.arrival_s,
            model=ModelId(self.model) if self.model else None,
            quant=self.quant,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            cpu_seconds=self.cpu_seconds,
            memory_gb=self.memory_gb,
            privacy=self.privacy,
            owner=OwnerId(self.owner) if self.owner else None,
            deadline_s=self.deadline_s,
            priority=self.priority,
            tier=self.tier,
            account=AccountId(self.account) if self.account else None,
            pipeline_id=self.pipeline_id,
            stage=self.stage,
            depends_on=self.depends_on,
        )


class ExecutorSpec(_Part):
    """Which executor runs a task on the agent and with what.

    ``kind``: "processor" (``target`` is an import path ``package.module:function``) or a
    built-in "sleep" / "echo" / "burn"; LLM backends add their kinds ("ollama", ...).
    """

    kind: str = Field(min_length=1, max_length=64)
    target: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    def calls_cloud(self) -> bool:
        """Is this a call to a cloud API (run beside the agent's slots: it waits on the network)?"""
        return self.kind == CLOUD_BACKEND or self.options.get("backend") == CLOUD_BACKEND

    def to_cloud(self, offer: str) -> ExecutorSpec:
        """The same step as a call to the API ``offer`` (protocol 1.5: a cloud placement)."""
        return ExecutorSpec(kind="llm", target=self.target,
                            options={**self.options, "backend": CLOUD_BACKEND, "offer": offer})


class Timings(_Part):
    """Wall-clock instants (Unix seconds) of one attempt."""

    queued_at: float = Field(description="The control plane dispatched the assignment.")
    received_at: float = Field(description="The agent accepted it.")
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    cpu_s: NonNegative | None = Field(None, description="CPU seconds the step's worker process used.")


# --- messages -----------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = _CONFIG

    v: str = Field(PROTOCOL_VERSION, pattern=r"^\d+\.\d+$")
    sender: Ident
    seq: Count = Field(description="Per-sender sequence number, rising by one per message.")
    sent_at: float = Field(description="Sender's wall clock (Unix seconds).")


class _AttemptMessage(_Message):
    """A message about one attempt of one task on one node."""

    node_id: Ident
    task_id: str = Field(min_length=1)
    attempt: Count


class CapacityReport(_Message):
    """What a node has and does now (the seed's capacity vocabulary + what the optimizer needs)."""

    type: Literal["capacity"] = "capacity"
    node_id: Ident
    agent_id: Ident
    hostname: str
    os: str
    arch: str
    chip: str
    device: str | None = Field(None, description="Catalog device id; None if not in the catalog.")
    measured: MeasuredDevice | None = Field(None, description="Figures measured at start, sent "
                                            "when the machine is not in the catalog.")
    memory: Memory
    cpu: Cpu
    gpu: Gpu | None = None
    neural_engine: NeuralEngine = NeuralEngine()
    thermal: Thermal = Thermal()
    power: Power = Power()
    labels: dict[str, str] = Field(default_factory=dict)
    owner: str
    trusted_owners: tuple[str, ...] = ()
    status: NodeStatus = NodeStatus.ACTIVE
    slots: Annotated[int, Field(ge=1)]
    free_slots: Count
    queued: Count = Field(0, description="Assignments accepted but waiting in the local queue.")
    reserved_memory_gb: NonNegative = 0.0
    resident_models: tuple[ResidentModel, ...] = ()
    running: tuple[TaskRef, ...] = ()
    refused_messages: Count = Field(0, description="Garbage messages this agent has refused.")
    accepts: tuple[str, ...] = Field(
        (), description="Message types beyond protocol 1.0 this agent takes (e.g. 'assign_batch')."
    )
    cloud_offers: tuple[str, ...] = Field(
        (), description="Catalog API offers this agent can call (it holds the key), e.g. 'claude-haiku-4.5'."
    )
    features: dict[Annotated[str, Field(max_length=64)], tuple[FeatureName, ...]] | None = Field(
        None, exclude_if=lambda features: features is None,
        description="(1.13) What each LLM backend runs beyond a plain chat, by backend name, e.g. "
                    "{'mlx': ['raw']}; absent: what the protocol version implies.")
    installed: tuple[ResidentModel, ...] | None = Field(
        None, exclude_if=lambda installed: installed is None,
        description="(1.14) The catalog (model, quant) pairs the local model servers have, loaded "
                    "or not; absent: unknown (the node may run any model).")


class Assignment(_Message):
    """Run one attempt of a task. Sent as a request; the reply is an `AssignReply`."""

    type: Literal["assign"] = "assign"
    node_id: Ident
    task: TaskSpec
    attempt: Count
    executor: ExecutorSpec
    payload: Any = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    queued_at: float = Field(description="When the control plane dispatched it (Unix seconds).")


class AssignReply(_AttemptMessage):
    """An agent's answer to an `Assignment`: accepted (running or locally queued) or refused."""

    type: Literal["assign_reply"] = "assign_reply"
    accepted: bool
    queued: bool = False
    reason: str | None = None


MAX_BATCH_ASSIGNMENTS = 512
"""Most assignments in one `AssignBatch` (a sender also keeps it under MAX_MESSAGE_BYTES)."""


class AssignBatch(_Message):
    """Several assignments to one node in one request (1.2); the reply is an
    `AssignBatchReply` with one `AssignReply` per assignment, in the same order."""

    type: Literal["assign_batch"] = "assign_batch"
    node_id: Ident
    assignments: tuple[Assignment, ...] = Field(min_length=1, max_length=MAX_BATCH_ASSIGNMENTS)


class AssignBatchReply(_Message):
    type: Literal["assign_batch_reply"] = "assign_batch_reply"
    node_id: Ident
    replies: tuple[AssignReply, ...]


class TaskStarted(_AttemptMessage):
    type: Literal["task_started"] = "task_started"
    timings: Timings


class TaskFinished(_AttemptMessage):
    """The end of one attempt: ``ok`` with a result, or ``failed``/``cancelled`` with a reason."""

    type: Literal["task_finished"] = "task_finished"
    outcome: Literal["ok", "failed", "cancelled"]
    reason: str | None = None
    result: Any = None
    timings: Timings


EMBEDDING_CHUNK_BYTES = MAX_MESSAGE_BYTES - 8 * 1024
"""The most a `TokenChunk`'s ``embeddings`` may take as JSON (the rest of the chunk is well under
8 KiB): a sender counts each float at its longest JSON form (`FLOAT_JSON_BYTES`), so a chunk
always fits in a message."""
FLOAT_JSON_BYTES = 25
"""The longest a float takes in JSON with its comma (``-2.2250738585072014e-308,``)."""
MAX_BATCH_REPORTS = 512
"""Most reports in one `TaskReports` (a sender also keeps it under MAX_MESSAGE_BYTES)."""
TaskReport = Annotated[TaskStarted | TaskFinished, Field(discriminator="type")]


class TaskReports(_Message):
    """Several task reports of one node in one message (1.2), in the order they happened;
    each is handled as if it had come alone."""

    type: Literal["task_reports"] = "task_reports"
    node_id: Ident
    reports: tuple[TaskReport, ...] = Field(min_length=1, max_length=MAX_BATCH_REPORTS)


class ToolCall(_Part):
    """A call of one of the request's tools the model made (1.9)."""

    id: str = Field(min_length=1, description="The call's id: a tool result names it.")
    name: str = Field(min_length=1, description="The tool (function) called.")
    arguments: str = Field(description="The arguments as the model wrote them: a JSON object's text.")


class TokenChunk(_AttemptMessage):
    """Output of one LLM attempt, in order: ``index`` counts this attempt's chunks from 0.

    The last chunk of an attempt has ``done`` set, no text, the attempt's ``outcome`` (and
    ``reason``) and ``usage``: the result's token counts, model, finish reason and timings
    (its ``text`` left out: the caller has it already), and (1.9) the model's ``tool_calls``
    if it made any (the field is left out of the JSON when it made none). An embedding attempt
    (1.10) sends its vectors in ``embeddings`` instead of text, as many chunks as their size
    needs (`EMBEDDING_CHUNK_BYTES`), before the closing one. A reasoning model's thinking
    (1.12) comes in chunks of ``thinking`` (their ``text`` empty), in order with the text's."""

    type: Literal["tokens"] = "tokens"
    index: Count
    text: str = ""
    done: bool = False
    outcome: Literal["ok", "failed", "cancelled"] | None = None
    reason: str | None = None
    usage: dict[str, Any] | None = None
    tool_calls: tuple[ToolCall, ...] | None = Field(None, exclude_if=lambda calls: calls is None)
    embeddings: tuple[tuple[float, ...], ...] | None = Field(
        None, exclude_if=lambda vectors: vectors is None,
        description="(1.10) An embedding attempt's next vectors, in input order.")
    thinking: str | None = Field(
        None, exclude_if=lambda text: text is None,
        description="(1.12) The next piece of a reasoning model's thinking (apart from its answer).")


class ImageRequest(_AttemptMessage):
    """A piece of one image of a task the sender runs (1.11), from byte ``offset``."""

    type: Literal["image_request"] = "image_request"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The image's digest, as the task's payload names it.")
    offset: Count = 0


class Control(_Message):
    """Drain the node (``deadline_s`` for in-flight work) or cancel one task's attempt."""

    type: Literal["control"] = "control"
    node_id: Ident
    action: Literal["drain", "cancel"]
    task_id: str | None = None
    attempt: Count | None = None
    deadline_s: Annotated[float, Field(gt=0)] | None = None
    reason: str | None = None


class ControlReply(_Message):
    type: Literal["control_reply"] = "control_reply"
    node_id: Ident
    action: Literal["drain", "cancel"]
    ok: bool
    reason: str | None = None


class Left(_Message):
    """The agent has drained and is leaving; ``abandoned`` lists attempts cut at the deadline."""

    type: Literal["left"] = "left"
    node_id: Ident
    reason: str
    abandoned: tuple[TaskRef, ...] = ()


Message = (
    CapacityReport | Assignment | AssignReply | TaskStarted | TaskFinished | Control
    | ControlReply | Left | TokenChunk | AssignBatch | AssignBatchReply | TaskReports | ImageRequest
)
MESSAGE_TYPES: dict[str, type[_Message]] = {
    m.model_fields["type"].default: m
    for m in (
        CapacityReport, Assignment, AssignReply, TaskStarted, TaskFinished, Control,
        ControlReply, Left, TokenChunk, AssignBatch, AssignBatchReply, TaskReports, ImageRequest,
    )
}
"""The ``type`` tag -> model, for every message of protocol v1."""


# --- bytes <-> messages -------------------------------------------------------------------


def encode(message: _Message) -> bytes:
    """Compact JSON bytes; refuses (ProtocolError) a message larger than MAX_MESSAGE_BYTES."""
    data = message.model_dump_json(exclude_defaults=False).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise _oversized(len(data))
    return data


def decode(
    data: bytes, expect: type[_Message] | tuple[type[_Message], ...] | None = None
) -> Any:
    """Bytes -> message, or ProtocolError naming the field (VersionError for another major).

    ``expect`` limits the accepted message types (a subject carries only its own types).
    """
    raw = read_envelope(data)
    kind = raw.get("type")
    model = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ProtocolError("type", f"expected one of {', '.join(MESSAGE_TYPES)}, got {kind!r}")
    allowed = (expect,) if isinstance(expect, type) else expect
    if allowed is not None and model not in allowed:
        names = ", ".join(m.model_fields["type"].default for m in allowed)
        raise ProtocolError("type", f"expected {names} on this subject, got {kind!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "<message>"
        raise ProtocolError(where, f"{err['msg']} (got {_short(err.get('input'))})") from None


def decode_one(data: bytes, model: type[_Message]) -> Any:
    """`decode` for a subject that carries one message type: a message that passes is parsed
    and validated in one pass by pydantic's JSON parser (a third of `decode`'s cost, for the
    per-token messages); one that fails goes through `decode` for the same error."""
    if len(data) <= MAX_MESSAGE_BYTES:
        try:
            message = model.model_validate_json(data)
        except ValidationError:
            pass
        else:
            if "v" in message.model_fields_set:  # ``v`` has a default: a message must send it
                check_version(message.v)
                return message
    decode(data, model)
    raise AssertionError("decode accepted what the model refused")  # pragma: no cover


def read_envelope(data: bytes) -> dict[str, Any]:
    """Bytes -> the message's JSON object, refused (ProtocolError / VersionError) when it is
    oversized, not a JSON object or of another major version. Every decoder starts here."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise _oversized(len(data))
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("<message>", f"expected a JSON object: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("<message>", f"expected a JSON object, got {type(raw).__name__}")
    check_version(raw.get("v"))
    return raw


def _oversized(size: int) -> ProtocolError:
    return ProtocolError("<message>", f"{size} bytes, more than the {MAX_MESSAGE_BYTES} allowed")


def check_version(v: object) -> None:
    """Refuse a missing, malformed or other-major ``v`` (VersionError names the field)."""
    if not isinstance(v, str) or not v.partition(".")[0].isdigit():
        raise VersionError(
            "v", f"expected a protocol version like {PROTOCOL_VERSION!r}, got {_short(v)}"
        )
    if int(v.partition(".")[0]) != PROTOCOL_MAJOR:
        raise VersionError(
            "v", f"protocol major version {v!r} is not spoken here (this is {PROTOCOL_VERSION})"
        )


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_msg_id(report: TaskStarted | TaskFinished) -> str:
    """JetStream dedup id (``Nats-Msg-Id``) of a task report: one per (task, attempt, kind)."""
    return f"{report.task_id}:{report.attempt}:{report.type}"


# --- onto the optimizer's view ------------------------------------------------------------


def node_state(report: CapacityReport, backlog_s: float = 0.0) -> NodeState:
    """The optimizer's `NodeState` of the reporting node (the control plane adds backlog)."""
    return NodeState(
        node_id=NodeId(report.node_id),
        free_memory_gb=max(0.0, report.memory.free_gb - report.reserved_memory_gb),
        free_slots=report.free_slots,
        resident_models=frozenset((ModelId(m.model), m.quant) for m in report.resident_models),
        backlog_s=backlog_s,
        status=report.status,
        power_source=report.power.source,
        thermal=report.thermal.state,
        speed_factor=THROTTLED_SPEED_FACTOR if report.thermal.throttling else 1.0,
    )


def node_from_report(report: CapacityReport, fallback_device: str | None = None) -> Node:
    """The fleet `Node` a report describes (device from the catalog, owner and trust, slots,
    the features its local backends run: heddle.live.features.node_features).

    A report without a catalog device but with ``measured`` figures becomes a generic device
    (heddle.models.generic). Raises ProtocolError on ``device`` when the report names no
    catalog device, has no figures and there is no ``fallback_device``, or names a device the
    catalog does not know.
    """
    from heddle.live.features import node_features, runtime
    from heddle.models import catalog
    from heddle.models.errors import UnknownIdError

    device_id = report.device or (None if report.measured is not None else fallback_device)
    if device_id is None and report.measured is not None:  # measured beats a fallback's guess
        spec = generic_device(report.measured.figures(), report.node_id)
    elif device_id is None:
        raise ProtocolError("device", "the node reports no catalog device, no measured figures, "
                                      "and no fallback is set")
    else:
        try:
            spec = catalog.device(device_id)
        except UnknownIdError as exc:
            raise ProtocolError("device", str(exc)) from None
    return Node(
        id=NodeId(report.node_id),
        device=spec,
        memory_gb=report.memory.total_gb,
        owner=OwnerId(report.owner),
        trusted_owners=frozenset(OwnerId(o) for o in report.trusted_owners),
        labels=dict(report.labels),
        power_source=report.power.source,
        slots=report.slots,
        reserved_memory_gb=report.reserved_memory_gb,
        features=node_features(report.features, report.v),
        installed=(None if report.installed is None
                   else frozenset((m.model, m.quant) for m in report.installed)),
        runtime=runtime(report.features),
    )
