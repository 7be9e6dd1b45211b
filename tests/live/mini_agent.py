"""A minimal agent speaking protocol v1, run as its own OS process by the cluster tests until
`heddle agent` is available (then the tests start that instead; see clusterkit.agent_command).
Same flags as `heddle agent`:

    python mini_agent.py --nats URL --node-id N --owner O --slots S [--trust A,B] [--report-every S]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

import nats

from heddle.live import protocol as wire

async def main(url: str, node: str, owner: str, slots: int, trusted: tuple[str, ...], interval: float) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    js = nc.jetstream()
    seq = 0
    running: dict[tuple[str, int], asyncio.Task] = {}
    draining = asyncio.Event()
    done = asyncio.Event()

    def nxt() -> int:
        nonlocal seq
        seq += 1
        return seq

    def capacity() -> bytes:
        return wire.encode(wire.CapacityReport(
            sender=node, seq=nxt(), sent_at=time.time(), node_id=node, agent_id=node,
            hostname="localhost", os="linux", arch="x86_64", chip="test", device="m1-7",
            memory=wire.Memory(total_gb=16, free_gb=12, unified=True),
            cpu=wire.Cpu(performance_cores=4, utilization=0.1), owner=owner, trusted_owners=trusted,
            status="draining" if draining.is_set() else "active", slots=slots,
            free_slots=max(0, slots - len(running)),
            running=tuple(wire.TaskRef(task_id=t, attempt=a) for t, a in running),
        ))

    async def report(message) -> None:
        while True:
            try:
                await js.publish(wire.subject(wire.REPORT, node=node), wire.encode(message),
                                 headers={"Nats-Msg-Id": wire.report_msg_id(message)})
                return
            except Exception:  # noqa: BLE001 - server restarting: try again
                await asyncio.sleep(0.1)

    async def run(a: wire.Assignment) -> None:
        got = time.time()
        await report(wire.TaskStarted(sender=node, seq=nxt(), sent_at=time.time(), node_id=node,
                                      task_id=a.task.id, attempt=a.attempt,
                                      timings=wire.Timings(queued_at=a.queued_at, received_at=got,
                                                           started_at=time.time())))
        outcome, result, reason = "ok", None, None
        try:
            if a.executor.kind == "sleep":
                await asyncio.sleep(float(a.executor.options.get("seconds", 0.01)))
            elif a.executor.kind == "burn":
                await asyncio.sleep(float(a.executor.options.get("cpu_seconds", 0.0)))
            elif a.executor.kind == "fail":
                raise RuntimeError("asked to fail")
            result = {"echo": a.task.id, "node": node}
        except asyncio.CancelledError:
            outcome, reason = "cancelled", "cancelled"
        except Exception as exc:  # noqa: BLE001
            outcome, reason = "failed", str(exc)
        running.pop((a.task.id, a.attempt), None)
        await report(wire.TaskFinished(sender=node, seq=nxt(), sent_at=time.time(), node_id=node,
                                       task_id=a.task.id, attempt=a.attempt, outcome=outcome,
                                       result=result, reason=reason,
                                       timings=wire.Timings(queued_at=a.queued_at, received_at=got,
                                                            started_at=got, finished_at=time.time())))
        if draining.is_set() and not running:
            done.set()

    async def on_assign(msg) -> None:
        a = wire.decode(msg.data, wire.Assignment)
        ok = not draining.is_set()
        if ok:
            running[(a.task.id, a.attempt)] = asyncio.get_running_loop().create_task(run(a))
        await msg.respond(wire.encode(wire.AssignReply(
            sender=node, seq=nxt(), sent_at=time.time(), node_id=node, task_id=a.task.id,
            attempt=a.attempt, accepted=ok, reason=None if ok else "draining")))

    async def on_control(msg) -> None:
        c = wire.decode(msg.data, wire.Control)
        if c.action == "cancel":
            task = running.get((c.task_id, c.attempt))
            if task is not None:
                task.cancel()
        else:
            draining.set()
            if not running:
                done.set()

    await nc.subscribe(wire.subject(wire.ASSIGN, node=node), cb=on_assign)
    await nc.subscribe(wire.subject(wire.CONTROL, node=node), cb=on_control)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: (draining.set(), None if running else done.set()))
    while not done.is_set():
        try:
            await nc.publish(wire.subject(wire.CAPACITY, node=node), capacity())
        except Exception:  # noqa: BLE001
            pass
        try:
            await asyncio.wait_for(done.wait(), interval)
        except TimeoutError:
            pass
    await nc.publish(wire.subject(wire.LEFT, node=node), wire.encode(
        wire.Left(sender=node, seq=nxt(), sent_at=time.time(), node_id=node, reason="drained")))
    await nc.drain()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats")
    parser.add_argument("--node-id")
    parser.add_argument("--owner")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--trust", default="")
    parser.add_argument("--report-every", type=float, default=0.2)
    parser.add_argument("--device", default="m1-7")
    a = parser.parse_args()
    trusted = tuple(t for t in a.trust.split(",") if t)
    asyncio.run(main(a.nats, a.node_id, a.owner, a.slots, trusted, a.report_every))
