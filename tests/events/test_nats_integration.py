"""Against a real nats-server: CAS under contention, ACL roles, lease expiry after a crash,
provenance on forged events, stream set-up, and the whole pipeline on JetStream."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from nats.js import api
from nats.js.errors import KeyNotFoundError, NoStreamResponseError

from heddle.events.acl import nats_auth_config, role_permissions
from heddle.events.aggregate import Phase
from heddle.events.command_handler import CommandHandler
from heddle.events.dedup import NatsDedupPublisher, NatsDedupSubscriber
from heddle.events.dispatcher import EventDispatcher
from heddle.events.envelopes import RejectionEnvelope
from heddle.events.errors import (
    ConcurrencyError,
    CorruptAggregateAlert,
    LeaseUnsupportedError,
    PublishPermissionError,
)
from heddle.events.jetstream import (
    ensure_command_stream,
    ensure_event_stream,
    ensure_rejection_stream,
    event_stream_name,
)
from heddle.events.jetstream_log import JetStreamEventLog, JetStreamRejectionLog
from heddle.events.lease import finalization_lease, lease_key
from heddle.events.lifecycle import TaskAggregate
from heddle.events.nats_kv import CLAIM_ATTEMPTS, NatsKeyValueStore, msg_ttl_supported
from heddle.events.natsd import start_nats_server
from heddle.events.projectors import CascadeProjector, ScopeMembershipProjector
from heddle.events.snapshot import SnapshotStore
from heddle.events.testing import make_command, make_event, wait_until

LEASE_EXPIRY_TIMEOUT_S = 10.0
"""Upper bound for a 1 s lease to disappear on a loaded machine."""
REFUSAL_ACK_TIMEOUT_S = 120.0
"""Ack/request timeout where a refusal is expected: so long that only the server's
permissions error (PublishPermissionError) can end the wait within the test run (and an
answer that must come, however loaded the machine)."""


async def test_concurrent_writers_exactly_one_wins_each_version(connect, uid):
    """Six writers on six connections race to append 8 events each to one aggregate."""
    agg_type, writers_n, per_writer = "Race" + uid, 6, 8
    logs = [JetStreamEventLog((await connect()).jetstream()) for _ in range(writers_n)]
    await ensure_event_stream(logs[0]._js, agg_type)
    conflicts = 0

    async def writer(index: int, log: JetStreamEventLog) -> None:
        nonlocal conflicts
        written = 0
        while written < per_writer:
            current = await log.current_version(agg_type, "hot")
            envelope = make_event(
                aggregate_type=agg_type,
                aggregate_id="hot",
                aggregate_version=current + 1,
                payload={"writer": index, "n": written},
            )
            try:
                await log.append(envelope, expected_version=current)
                written += 1
            except ConcurrencyError:
                conflicts += 1

    await asyncio.gather(*(writer(i, log) for i, log in enumerate(logs)))
    events = [e async for e in logs[0].load(agg_type, "hot")]
    assert [e.aggregate_version for e in events] == list(range(1, writers_n * per_writer + 1))
    written = sorted((e.payload["writer"], e.payload["n"]) for e in events)
    assert written == [(w, n) for w in range(writers_n) for n in range(per_writer)]
    info = await logs[0]._js.stream_info(event_stream_name(agg_type))
    assert info.state.messages == writers_n * per_writer  # losers left nothing behind


async def test_ensure_streams_are_idempotent_with_the_stated_configuration(nc, uid):
    js = nc.jetstream()
    agg_type = "Cfg" + uid
    for ensure, prefix, subject, days in [
        (ensure_event_stream, "HEDDLE_EVENTS_", "heddle.events", 7),
        (ensure_command_stream, "HEDDLE_COMMANDS_", "heddle.commands", 7),
        (ensure_rejection_stream, "HEDDLE_REJECTIONS_", "heddle.rejections", 30),
    ]:
        first = await ensure(js, agg_type)
        again = await ensure(js, agg_type)
        config = again.config
        assert config.name == first.config.name == prefix + agg_type.upper()
        assert config.subjects == [f"{subject}.{agg_type}.>"]
        assert (config.storage, config.num_replicas) == (api.StorageType.FILE, 1)
        assert config.max_age == days * 24 * 3600


async def test_forged_internal_finalized_in_the_log_is_refused_by_provenance(nc, uid):
    """If a forged InternalFinalized gets past the ACL (here: an unauthenticated server),
    the process replaying it refuses it."""
    log, rejections = JetStreamEventLog(nc.jetstream()), JetStreamRejectionLog(nc.jetstream())
    await log.append(
        make_event(
            aggregate_type="Task",
            aggregate_id="t" + uid,
            event_type="TaskSubmitted",
            payload={"job_id": "", "model": "m", "owner": "o", "privacy": "public"},
        ),
        expected_version=0,
    )
    await log.append(
        make_event(
            "InternalFinalized",
            aggregate_type="Task",
            aggregate_id="t" + uid,
            aggregate_version=2,
            issued_by="user:badge:666",
        ),
        expected_version=1,
    )
    handler = CommandHandler(log, rejections)
    with pytest.raises(CorruptAggregateAlert, match="user:badge:666"):
        await handler.handle(
            make_command(
                "PlaceTask", aggregate_type="Task", aggregate_id="t" + uid, payload={"target": "n1"}
            )
        )


async def test_lease_of_a_crashed_holder_expires_after_its_ttl(connect, uid):
    holder_conn, other_conn = await connect(), await connect()
    bucket = "lease" + uid
    holder = await NatsKeyValueStore.open(holder_conn, bucket=bucket)
    other = await NatsKeyValueStore.open(other_conn, bucket=bucket)
    async with finalization_lease(holder, "Task", uid, projector_name="cascade", ttl_s=1) as won:
        assert won
        await holder_conn.close()  # the holder dies inside its critical section
    async with finalization_lease(other, "Task", uid, projector_name="horizon", ttl_s=1) as won:
        assert not won  # still held: a crash does not release it

    async def claimable() -> bool:
        async with finalization_lease(
            other, "Task", uid, projector_name="horizon", ttl_s=1
        ) as claimed:
            return claimed

    await wait_until(claimable, timeout_s=LEASE_EXPIRY_TIMEOUT_S, interval_s=0.1)
    assert b"horizon" in await other.get(lease_key("Task", uid))


async def test_ttl_claims_are_refused_where_keys_cannot_expire(nc, uid):
    js = nc.jetstream()
    bucket = "old" + uid
    # A bucket as an older tool would have made it: no allow_msg_ttl on its stream.
    await js.add_stream(
        name=f"KV_{bucket}",
        subjects=[f"$KV.{bucket}.>"],
        max_msgs_per_subject=1,
        allow_rollup_hdrs=True,
        deny_delete=True,
        allow_msg_ttl=False,
        discard=api.DiscardPolicy.NEW,
    )
    store = await NatsKeyValueStore.open(nc, bucket=bucket)
    assert not store.ttl_supported
    with pytest.raises(LeaseUnsupportedError, match="allow_msg_ttl"):
        await store.set_if_not_exists("heddle:events:horizon:Task:t1", b"x", ttl_s=5)
    assert await store.set_if_not_exists("heddle:events:snapshot:Task:t1", b"x") is True
    assert [msg_ttl_supported(v) for v in ("2.10.24", "2.11.0", "v2.15.1", "3.0.0", "junk")] == [
        False,
        True,
        True,
        True,
        False,
    ]


async def test_seed_keys_map_to_dotted_nats_kv_keys(nc, uid):
    bucket = "map" + uid
    store = await NatsKeyValueStore.open(nc, bucket=bucket)
    await store.put("heddle:events:snapshot:Job:j1", b"blob")
    raw = await nc.jetstream().key_value(bucket)
    assert (await raw.get("heddle.events.snapshot.Job.j1")).value == b"blob"
    with pytest.raises(ValueError, match="cannot be stored"):
        await store.put("heddle:events:snapshot:Job:has space", b"x")


async def test_cascade_and_cross_process_dedup_on_jetstream(connect, uid):
    """Two handler 'processes' with NATS KV snapshots and the NATS dedup bus; P1 + P2 on a
    dispatcher cascade a Job's finalization to its Tasks."""
    conns = [await connect() for _ in range(2)]
    kv = await NatsKeyValueStore.open(conns[0], bucket="pipe" + uid)

    def handler(conn):
        js = conn.jetstream()
        return CommandHandler(
            JetStreamEventLog(js),
            JetStreamRejectionLog(js),
            snapshots=SnapshotStore(kv),
            snapshot_every_n=50,
            dedup_publisher=NatsDedupPublisher(conn),
            dedup_subscriber=NatsDedupSubscriber(conn),
        )

    a, b = handler(conns[0]), handler(conns[1])
    membership = ScopeMembershipProjector()
    dispatcher = EventDispatcher(a.event_log)
    dispatcher.register(membership)
    dispatcher.register(CascadeProjector(membership, a, kv=kv))
    await dispatcher.start("Job")
    job, tasks = "job" + uid, [f"task{uid}{i}" for i in range(3)]
    try:
        await a.handle(
            make_command(
                "SubmitJob", aggregate_type="Job", aggregate_id=job, payload={"owner": "ana"}
            )
        )
        for task in tasks:
            await a.handle(
                make_command(
                    "SubmitTask",
                    aggregate_type="Task",
                    aggregate_id=task,
                    payload={
                        "job_id": job,
                        "model": "llama-3-8b",
                        "owner": "ana",
                        "privacy": "personal",
                    },
                )
            )
            await a.handle(
                make_command(
                    "AddTask", aggregate_type="Job", aggregate_id=job, payload={"task_id": task}
                )
            )
        # Cross-process dedup: a caches task 0 at version 1; b moves it on and handles
        # `start`; the announcement on heddle.dedup marks a's stale copy, so a's retry of
        # `start` returns b's event instead of failing or writing a duplicate.
        await b.handle(
            make_command(
                "PlaceTask",
                aggregate_type="Task",
                aggregate_id=tasks[0],
                payload={"target": "mac-mini-1"},
            )
        )
        start = make_command("StartTask", aggregate_type="Task", aggregate_id=tasks[0])
        original = await b.handle(start)
        stale = a.cache.get(("Task", tasks[0]))
        assert stale.aggregate_version == 1
        await wait_until(lambda: stale.has_processed(start.command_id))
        assert (await a.handle(start)).event_id == original.event_id

        await a.handle(
            make_command(
                "InternalFinalize",
                aggregate_type="Job",
                aggregate_id=job,
                issued_by="framework:control_plane",
            )
        )
        log = a.event_log

        async def all_finalized() -> bool:
            for task in tasks:
                events = [e async for e in log.load("Task", task)]
                if events[-1].event_type != "InternalFinalized":
                    return False
            return True

        await wait_until(all_finalized)
        fresh = handler(await connect())
        with pytest.raises(Exception, match="ALREADY_FINALIZED"):
            await fresh.handle(
                make_command("StartTask", aggregate_type="Task", aggregate_id=tasks[1])
            )
        assert membership.children("Job", job) == {"Task": frozenset(tasks)}
        rebuilt = fresh.cache.get(("Task", tasks[1]))
        assert rebuilt.phase is Phase.FINALIZED and rebuilt.finalized_by == "framework:cascade"
    finally:
        await dispatcher.stop()


# -- ACL: a server running the generated configuration ---------------------------------------

PASSWORDS = {
    role: f"pw-{role}-{uuid.uuid4().hex[:6]}"
    for role in ("framework", "application", "observer", "workshop")
}


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("nats-acl")
    config = directory / "auth.conf"
    config.write_text(nats_auth_config(PASSWORDS))
    server = start_nats_server(directory / "js", config_file=config)
    yield server
    server.stop()


@pytest.fixture
async def framework_and_application(acl_server):
    """(framework, application, errors): both roles connected, the Task event and rejection
    streams and the KV bucket set up by the framework; closed at teardown."""
    errors: list[str] = []
    framework = await connect_as(acl_server, "framework", errors)
    application = await connect_as(acl_server, "application", errors)
    for ensure in (ensure_event_stream, ensure_rejection_stream):
        await ensure(framework.jetstream(), "Task")
    await NatsKeyValueStore.open(framework)
    yield framework, application, errors
    await framework.close()
    await application.close()


async def connect_as(server, role, errors):
    async def on_error(exc):
        errors.append(str(exc))

    return await nats.connect(
        server.url,
        user=role,
        password=PASSWORDS[role],
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=5,
    )


async def test_only_framework_may_publish_internal_finalized(acl_server, uid):
    errors: list[str] = []
    framework = await connect_as(acl_server, "framework", errors)
    application = await connect_as(acl_server, "application", errors)
    try:
        agg_id = "t" + uid
        fw_log = JetStreamEventLog(framework.jetstream())
        await ensure_event_stream(framework.jetstream(), "Task")
        # A long ack timeout: the refusal must come from the server's permissions error, at
        # once, not from a missing ack (which would also be the wrong error type).
        app_log = JetStreamEventLog(
            application.jetstream(), ensure_streams=False, ack_timeout_s=REFUSAL_ACK_TIMEOUT_S
        )
        # The application role can do ordinary event-sourcing work on JetStream...
        await app_log.append(
            make_event("TaskSubmitted", aggregate_type="Task", aggregate_id=agg_id),
            expected_version=0,
        )
        assert [e.aggregate_version async for e in app_log.load("Task", agg_id)] == [1]
        # ...but a forged InternalFinalized never reaches the stream.
        forged = make_event(
            "InternalFinalized",
            aggregate_type="Task",
            aggregate_id=agg_id,
            aggregate_version=2,
            issued_by="framework:forged",
        )
        with pytest.raises(PublishPermissionError, match="InternalFinalized") as refused:
            await app_log.append(forged, expected_version=1)
        assert refused.value.subject == f"heddle.events.Task.{agg_id}.InternalFinalized"
        assert isinstance(refused.value, PermissionError)
        await wait_until(
            lambda: any(
                "permissions violation" in e.lower() and "internalfinalized" in e.lower()
                for e in errors
            )
        )
        assert [e.event_type async for e in fw_log.load("Task", agg_id)] == ["TaskSubmitted"]
        # The framework role may publish it.
        real = make_event(
            "InternalFinalized",
            aggregate_type="Task",
            aggregate_id=agg_id,
            aggregate_version=2,
            issued_by="framework:cascade",
        )
        await fw_log.append(real, expected_version=1)
        assert [e.event_type async for e in fw_log.load("Task", agg_id)] == [
            "TaskSubmitted",
            "InternalFinalized",
        ]
    finally:
        await framework.close()
        await application.close()


async def test_observer_reads_but_cannot_manage_streams(acl_server, uid):
    errors: list[str] = []
    framework = await connect_as(acl_server, "framework", errors)
    await ensure_event_stream(framework.jetstream(), "Task")
    await framework.close()
    observer = await connect_as(acl_server, "observer", errors)
    try:
        with pytest.raises(nats.errors.TimeoutError):  # no reply to a forbidden API request
            await observer.jetstream(timeout=1.0).add_stream(name="X" + uid, subjects=["x.>"])
        await wait_until(lambda: any("stream.create" in e.lower() for e in errors))
        # Reading is allowed: stream info on the events stream answers.
        await observer.jetstream(timeout=REFUSAL_ACK_TIMEOUT_S).stream_info("HEDDLE_EVENTS_TASK")
        assert (
            "heddle.events.*.*.InternalFinalized" in role_permissions("observer")["publish"]["deny"]
        )
    finally:
        await observer.close()


async def test_application_role_runs_the_command_path_but_cannot_take_leases(
    framework_and_application, uid
):
    """The generated permissions are enough for real work: an application-role process
    handles commands (JetStream logs, read-only KV snapshots, dedup bus, a dispatcher
    subscription); stream and bucket set-up, snapshot writes and leases stay with the
    framework role."""
    _, application, errors = framework_and_application
    js = application.jetstream()
    kv = await NatsKeyValueStore.open(application, create=False)
    handler = CommandHandler(
        JetStreamEventLog(js, ensure_streams=False),
        JetStreamRejectionLog(js, ensure_streams=False),
        snapshots=SnapshotStore(kv, writable=False),  # only the framework writes them
        snapshot_every_n=1,
        dedup_publisher=NatsDedupPublisher(application),
        dedup_subscriber=NatsDedupSubscriber(application),
    )
    dispatcher = EventDispatcher(handler.event_log)
    seen: list[str] = []

    class Spy(ScopeMembershipProjector):
        async def project(self, envelope):
            seen.append(envelope.event_type)

    dispatcher.register(Spy())
    await dispatcher.start("Task")
    task = {"aggregate_type": "Task", "aggregate_id": "t" + uid}
    await handler.handle(
        make_command(
            "SubmitTask",
            payload={"job_id": "", "model": "m", "owner": "o", "privacy": "public"},
            **task,
        )
    )
    with pytest.raises(Exception, match="INVALID_TRANSITION"):
        await handler.handle(make_command("StartTask", **task))
    await wait_until(lambda: seen == ["TaskSubmitted"])
    await dispatcher.stop()
    assert await SnapshotStore(kv).load(TaskAggregate, "t" + uid) is None
    rejected = [r async for r in JetStreamRejectionLog(js).load("Task", "t" + uid)]
    assert [r.reason for r in rejected] == ["INVALID_TRANSITION"]
    assert errors == []
    with pytest.raises(PublishPermissionError, match="horizon"):  # not the app's to set
        await NatsKeyValueStore(
            await application.jetstream(timeout=REFUSAL_ACK_TIMEOUT_S).key_value("heddle"),
            ttl_supported=True,
            nc=application,
            bucket="heddle",
        ).set_if_not_exists(lease_key("Task", "t" + uid), b"x", ttl_s=5)
    await wait_until(lambda: any("heddle.events.horizon" in e.lower() for e in errors))


@pytest.mark.parametrize("raw_writes", [True, False])
async def test_appends_store_the_same_message_whichever_way_they_are_written(nc, uid, raw_writes):
    """The ack router writes HPUB frames itself when it can; nats-py's own publish is the
    fallback. Both must put the same headers and body in the stream, for single and batched
    appends, and an event id nats-py would rewrite (a newline) must still round-trip."""
    agg_type = "Raw" + uid
    log = JetStreamEventLog(nc.jetstream())
    log._acks.raw_writes = raw_writes
    first = make_event(aggregate_type=agg_type, aggregate_id="a", aggregate_version=1)
    odd_id = make_event(
        aggregate_type=agg_type, aggregate_id="a", aggregate_version=2, event_id="x\ny"
    )
    await log.append(first, expected_version=0)
    assert await log.append_batch([(odd_id, 1)]) == [None]
    stream = event_stream_name(agg_type)
    stored_first = await nc.jetstream().get_msg(stream, 1)
    stored_odd = await nc.jetstream().get_msg(stream, 2)
    assert stored_first.headers == {
        "Nats-Expected-Last-Subject-Sequence": "0",
        "Nats-Expected-Last-Subject-Sequence-Subject": f"heddle.events.{agg_type}.a.*",
        "Nats-Msg-Id": first.event_id,
    }
    assert stored_first.subject == f"heddle.events.{agg_type}.a.Recorded"
    assert stored_odd.headers["Nats-Msg-Id"] == "x y"  # nats-py's newline rule, either way
    assert stored_odd.headers["Nats-Expected-Last-Subject-Sequence"] == "1"
    assert [e async for e in log.load(agg_type, "a")] == [first, odd_id]


async def test_append_without_a_stream_says_so_single_and_batched(nc, uid):
    log = JetStreamEventLog(nc.jetstream(), ensure_streams=False, ack_timeout_s=5.0)
    agg_type = "NoStream" + uid
    with pytest.raises(NoStreamResponseError):
        await log.append(make_event(aggregate_type=agg_type, aggregate_id="a"), 0)
    results = await log.append_batch([(make_event(aggregate_type=agg_type, aggregate_id="b"), 0)])
    assert [type(r) for r in results] == [NoStreamResponseError]


async def test_a_refused_publish_in_a_batch_fails_alone_and_at_once(acl_server, uid):
    """The server refuses the application's forged InternalFinalized: that item fails with
    PublishPermissionError (not after the ack timeout) and the rest of its aggregate with
    ConcurrencyError, while the other aggregates' events in the same batch are appended."""
    errors: list[str] = []
    framework = await connect_as(acl_server, "framework", errors)
    application = await connect_as(acl_server, "application", errors)
    try:
        await ensure_event_stream(framework.jetstream(), "Task")
        app_log = JetStreamEventLog(
            application.jetstream(), ensure_streams=False, ack_timeout_s=REFUSAL_ACK_TIMEOUT_S
        )
        forged, ok = "forged" + uid, "ok" + uid
        items = [
            (make_event("TaskSubmitted", aggregate_type="Task", aggregate_id=forged), 0),
            (
                make_event(
                    "InternalFinalized",
                    aggregate_type="Task",
                    aggregate_id=forged,
                    aggregate_version=2,
                    issued_by="framework:forged",
                ),
                1,
            ),
            (
                make_event(
                    "TaskPlaced", aggregate_type="Task", aggregate_id=forged, aggregate_version=3
                ),
                2,
            ),
            (make_event("TaskSubmitted", aggregate_type="Task", aggregate_id=ok), 0),
            (
                make_event(
                    "TaskPlaced", aggregate_type="Task", aggregate_id=ok, aggregate_version=2
                ),
                1,
            ),
        ]
        results = await app_log.append_batch(items)
        assert results[0] is None and results[3] is None and results[4] is None
        assert isinstance(results[1], PublishPermissionError)
        assert isinstance(results[2], ConcurrencyError)
        assert [e.event_type async for e in app_log.load("Task", forged)] == ["TaskSubmitted"]
        assert [e.aggregate_version async for e in app_log.load("Task", ok)] == [1, 2]
    finally:
        await framework.close()
        await application.close()


def test_a_refusal_names_one_subject_or_none():
    """nats-py lower-cases the server's error: a refusal matches a subject case-blindly,
    and a case-only ambiguity matches nothing (those publishes wait for their timeout)."""
    from heddle.events.jetstream_acks import matching_subject

    denied = "heddle.events.task.t1.internalfinalized"
    assert matching_subject(denied, {"heddle.events.Task.t1.InternalFinalized"}) == (
        "heddle.events.Task.t1.InternalFinalized"
    )
    assert matching_subject(denied, {"heddle.events.Task.t2.InternalFinalized"}) is None
    ambiguous = {
        "heddle.events.Task.t1.InternalFinalized",
        "heddle.events.Task.T1.InternalFinalized",
    }
    assert matching_subject(denied, ambiguous) is None


async def test_only_framework_may_write_snapshots_and_a_forged_one_is_caught(
    framework_and_application, uid
):
    """Issue 25: an application-role client cannot write a snapshot that marks a task
    finalized (the server refuses it at once), and the same forgery written by other means
    (here: with the framework's credentials) is detected when a framework handler loads it."""
    framework, application, _ = framework_and_application
    fw_kv = await NatsKeyValueStore.open(framework)
    app_kv = await NatsKeyValueStore.open(application, create=False)
    task_id = "t" + uid
    app_handler = CommandHandler(
        JetStreamEventLog(application.jetstream(), ensure_streams=False),
        JetStreamRejectionLog(application.jetstream(), ensure_streams=False),
    )
    await app_handler.handle(
        make_command(
            "SubmitTask",
            aggregate_type="Task",
            aggregate_id=task_id,
            payload={"job_id": "", "model": "m", "owner": "o", "privacy": "personal"},
        )
    )
    forged = TaskAggregate.from_snapshot(app_handler.cache.get(("Task", task_id)).to_snapshot())
    forged.restore_state(
        {"phase": "finalized", "finalized_by": "framework:forged", "finalize_reason": ""}
    )
    with pytest.raises(PublishPermissionError, match="snapshot"):
        await SnapshotStore(app_kv).save(forged)
    assert await SnapshotStore(fw_kv).load(TaskAggregate, task_id) is None
    await SnapshotStore(fw_kv).save(forged)  # "by other means"
    fw_js = framework.jetstream()
    fw_handler = CommandHandler(
        JetStreamEventLog(fw_js), JetStreamRejectionLog(fw_js), snapshots=SnapshotStore(fw_kv)
    )
    placed = await fw_handler.handle(
        make_command(
            "PlaceTask",
            aggregate_type="Task",
            aggregate_id=task_id,
            payload={"target": "mac-1"},
            issued_by="framework:scheduler",
        )
    )
    assert placed.event_type == "TaskPlaced"  # not ALREADY_FINALIZED: the forgery lost
    assert fw_handler.untrusted_snapshots == 1
    assert not fw_handler.cache.get(("Task", task_id)).is_finalized


async def test_stream_set_up_by_a_role_that_may_not_is_refused_at_once(
    framework_and_application, uid
):
    """An application-role log left with ensure_streams=True fails its first append with a
    PublishPermissionError naming the stream API (not a timeout); the rejection log too."""
    _, application, _ = framework_and_application
    js = application.jetstream(timeout=REFUSAL_ACK_TIMEOUT_S)
    log = JetStreamEventLog(js, ack_timeout_s=REFUSAL_ACK_TIMEOUT_S)
    with pytest.raises(PublishPermissionError, match="STREAM.CREATE"):
        await log.append(make_event(aggregate_type="Task", aggregate_id="t" + uid), 0)
    rejections = JetStreamRejectionLog(js)
    cmd = make_command("PlaceTask", aggregate_type="Task", aggregate_id="t" + uid)
    refused = RejectionEnvelope(
        rejection_id=uid,
        command_id=cmd.command_id,
        command_type=cmd.command_type,
        aggregate_type="Task",
        aggregate_id="t" + uid,
        aggregate_version=0,
        reason="TEST",
        metadata=cmd.metadata,
        rejected_at_unix_s=1.0,
    )
    with pytest.raises(PublishPermissionError, match="STREAM.CREATE"):
        await rejections.append(refused)
    await JetStreamRejectionLog(js, ensure_streams=False).append(refused)  # allowed


class _ExpiringKey:
    """A bucket whose key expires between nats-py's refused create and its look-up of the
    key (KeyNotFoundError out of `create`, as a lease's TTL running out can make it), `races`
    times, then takes the create."""

    def __init__(self, races: int) -> None:
        self.races = races
        self.creates: list[tuple[str, bytes, float | None]] = []

    async def create(self, key: str, value: bytes, msg_ttl: float | None = None) -> int:
        self.creates.append((key, value, msg_ttl))
        if len(self.creates) <= self.races:
            raise KeyNotFoundError
        return len(self.creates)


@pytest.mark.parametrize("races", [1, 2])
async def test_a_claim_whose_holder_expires_mid_create_is_won(races):
    """Seen in CI: a lease expired just as another claimant's create was refused, and the
    claim failed with KeyNotFoundError instead of taking the now free key."""
    bucket = _ExpiringKey(races)
    store = NatsKeyValueStore(bucket, ttl_supported=True)  # type: ignore[arg-type]
    assert await store.set_if_not_exists("lease.Task.t1", b"mine", ttl_s=1)
    assert [c[1:] for c in bucket.creates] == [(b"mine", 1)] * (races + 1)


async def test_a_key_that_keeps_expiring_under_a_claim_is_not_claimed():
    bucket = _ExpiringKey(races=100)
    store = NatsKeyValueStore(bucket, ttl_supported=True)  # type: ignore[arg-type]
    assert not await store.set_if_not_exists("lease.Task.t1", b"mine", ttl_s=1)
    assert len(bucket.creates) == CLAIM_ATTEMPTS
