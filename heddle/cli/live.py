"""`heddle up`, `heddle scheduler`, `heddle submit`, `heddle status`, `heddle fleet`,
`heddle drain`, `heddle cancel`: run a cluster and talk to it (docs/live.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from heddle.cli.common import InputError, LazyConsole, new_table

if TYPE_CHECKING:
    from rich.table import Table

out = LazyConsole()
err = LazyConsole(stderr=True)

NatsOpt = Annotated[str | None, typer.Option("--nats", help="NATS URL (default nats://127.0.0.1:4222).")]
CredentialsOpt = Annotated[Path | None, typer.Option(
    "--credentials", envvar="HEDDLE_CREDENTIALS",
    help="Log in with this credentials file (`heddle users add` writes one; default <data dir>/user-credentials.json).")]
WAIT_POLL_S = 0.5
"""How often `submit --wait` and `fleet --watch` ask the control plane again."""
WAITING_TIMEOUT_S = 2.0
"""How long `heddle fleet` waits for the list of machines waiting to join (a local answer)."""


def _settings(**cli):
    from heddle.config import load_settings
    from heddle.models.errors import ConfigError

    try:
        return load_settings(cli)
    except ConfigError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _login(credentials: Path | None = None):
    """The credentials of the person at this machine: the file given (`heddle users add`
    wrote it), else the one `heddle up` stores in the data dir; None if there is none."""
    from heddle.live.cluster.join import USER_CREDENTIALS_FILE, Credentials, JoinError

    try:
        if credentials is not None:
            return Credentials.load(credentials.parent, credentials.name)
        return Credentials.find(_settings().data_dir, USER_CREDENTIALS_FILE)
    except JoinError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _url(nats: str | None, credentials: Path | None = None) -> str:
    """--nats, else the configured URL, else the login's (where this machine's `heddle up`
    listens, or the cluster a `heddle users add` file names)."""
    from heddle.live.control.client import DEFAULT_NATS_URL

    login = _login(credentials)
    return _settings(nats_url=nats).nats_url or (login.nats_url if login else DEFAULT_NATS_URL)


def _run(coro):
    import asyncio

    from heddle.live.control.client import ControlError

    try:
        return asyncio.run(coro)
    except ControlError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


async def _with_client(url: str, action, credentials: Path | None = None):
    from heddle.live.control.client import ControlClient

    login = _login(credentials)
    auth = {"asker": login.asker, **login.auth_options()} if login else {}
    client = await ControlClient.connect(url, **auth)
    try:
        return await action(client)
    finally:
        await client.close()


# -- scheduler ----------------------------------------------------------------------------------
def scheduler(
    nats: NatsOpt = None,
    policy: Annotated[str, typer.Option(help="Placement policy (heddle.optimizer).")] = "fast",
    report_interval: Annotated[float, typer.Option("--report-interval", min=0.05, help="Agents' capacity report interval, seconds.")] = 2.0,
    missed_reports: Annotated[int, typer.Option("--missed-reports", min=1, help="Silent intervals before a node is lost.")] = 3,
    ack_timeout: Annotated[float, typer.Option("--ack-timeout", min=0.01, help="Seconds an agent has to acknowledge an assignment.")] = 2.0,
    task_timeout: Annotated[float, typer.Option("--task-timeout", min=0.01, help="Default per-attempt time limit, seconds.")] = 600.0,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="Re-placements after lost attempts.")] = 3,
    fallback_device: Annotated[str | None, typer.Option("--fallback-device", help="Catalog device for nodes that report none.")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning or error.")] = None,
    credentials: Annotated[Path | None, typer.Option("--credentials", help="Log in with this credentials file (JSON: nats_url, user, password; `heddle up` writes one).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where ended tasks are recorded, in <data dir>/recorded (default ~/.heddle).")] = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Record every ended task as a trace (heddle twin check replays it).")] = True,
    fleet_file: Annotated[str | None, typer.Option("--fleet", metavar="FLEET", help="Fleet YAML or shipped fleet name whose cloud_offers and budgets apply (nodes come from the agents).")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="The cluster's users file (`heddle up` passes <data dir>/cluster/users.json): a user's tasks may name only its own owner and account.")] = None,
) -> None:
    """Run the control plane: place submitted work on the fleet, record every task's life."""
    import asyncio
    import logging

    from heddle.live.control.serve import serve
    from heddle.live.control.settings import ControlSettings
    from heddle.optimizer import POLICY_NAMES

    settings = _settings(nats_url=nats, log_level=log_level, data_dir=data_dir)
    if policy not in POLICY_NAMES:
        err.print(f"[red]error:[/] option --policy: unknown policy {policy!r}; expected one of {', '.join(POLICY_NAMES)}")
        raise typer.Exit(2)
    terms = None if fleet_file is None else _load_terms(fleet_file)[0]
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    control = ControlSettings(
        report_interval_s=report_interval, missed_reports=missed_reports, ack_timeout_s=ack_timeout,
        task_timeout_s=task_timeout, max_retries=max_retries, policy=policy, fallback_device=fallback_device,
        record_dir=str(settings.data_dir / "recorded") if record else None, fleet=terms,
        users_file=str(users) if users is not None else None,
    )
    from heddle.live.control.client import DEFAULT_NATS_URL

    auth = None
    if credentials is not None:
        from heddle.live.cluster.join import Credentials, JoinError

        try:
            auth = Credentials.load(credentials.parent, credentials.name).auth_options()
        except JoinError as exc:
            err.print(f"[red]error:[/] option --credentials: {exc}")
            raise typer.Exit(2) from None
    asyncio.run(serve(settings.nats_url or DEFAULT_NATS_URL, control, auth))


def _load_terms(fleet: str):
    """The fleet (a YAML path or a shipped name) whose cloud offers and budgets the control
    plane applies, and its file; or exit 2 with the file's error in one line."""
    from rich.markup import escape

    from heddle.cli.inputs import fleet_file
    from heddle.models.errors import ModelsError
    from heddle.models.fleet import load_fleet

    try:
        path = fleet_file(fleet)
        return load_fleet(path), path
    except (ModelsError, InputError) as exc:
        err.print(f"[red]error:[/] option --fleet: {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


# -- submit / status / fleet / drain / cancel ---------------------------------------------------
def submit(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Task/pipeline/council YAML (docs/models.md) with an optional run: section.")],
    nats: NatsOpt = None,
    job: Annotated[str | None, typer.Option("--job", help="Job id (default: file name + random suffix).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every task has ended; exit 1 if any did not complete.")] = False,
    credentials: CredentialsOpt = None,
) -> None:
    """Submit a workload file as one job."""
    from heddle.cli.inputs import text_of
    from heddle.live.control.client import new_job_id
    from heddle.live.control.submission import SubmissionError, load_submission

    text_of(file, "workload")  # a directory, binary data or an unreadable file: one line naming it
    job_id = job or new_job_id(file.stem)
    try:
        tasks = load_submission(file, job_id)
    except SubmissionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None

    async def action(client):
        import asyncio

        accepted = await client.submit(job_id, tasks, source=str(file))
        out.print(f"job {job_id}: {len(tasks)} tasks submitted ({accepted} new)")
        if not wait:
            return 0
        while True:
            status = await client.status(job_id, limit=0)
            counts = status.jobs.get(job_id, {})
            ended = sum(counts.get(k, 0) for k in ("completed", "failed", "rejected", "cancelled"))
            if ended >= len(tasks):
                out.print(_counts_table(f"job {job_id}", counts))
                return 0 if counts.get("completed", 0) == len(tasks) else 1
            await asyncio.sleep(WAIT_POLL_S)  # polling a remote service the user waits on

    raise typer.Exit(_run(_with_client(_url(nats, credentials), action, credentials)))


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = new_table(title=title)
    for state in ("submitted", "placed", "started", "completed", "failed", "rejected", "cancelled"):
        table.add_column(state, justify="right")
    table.add_row(*(f"{counts.get(s, 0):,}" for s in ("submitted", "placed", "started", "completed", "failed", "rejected", "cancelled")))
    return table


def status(
    job: Annotated[str | None, typer.Argument(metavar="JOB", help="A job id: list its tasks.")] = None,
    nats: NatsOpt = None,
    limit: Annotated[int, typer.Option(min=0, max=10_000, help="Most tasks listed.")] = 50,
    credentials: CredentialsOpt = None,
) -> None:
    """Task counts by state (all jobs; a user's own), or one job's tasks."""
    reply = _run(_with_client(_url(nats, credentials), lambda c: c.status(job, limit), credentials))
    if job is None:
        out.print(_counts_table("all jobs", reply.counts))
        for kind, n in sorted(reply.refused_messages.items()):
            out.print(f"refused {kind} messages: {n:,}")
        out.print(_shadow_line(reply.shadow))
        return
    out.print(_counts_table(f"job {job}", reply.jobs.get(job, {})))
    table = new_table(title=f"tasks of {job} (first {limit})")
    for col in ("task", "status", "node", "attempts", "service predicted / actual", "result / reason"):
        table.add_column(col)
    for row in reply.tasks:
        detail = row.reason if row.reason else ("" if row.result is None else str(row.result)[:60])
        shadow = "" if row.predicted_s is None else f"{row.predicted_s:.3f} / {row.actual_s:.3f} s"
        table.add_row(row.task_id, row.status, row.node, str(row.attempts), shadow, detail)
    out.print(table)
    out.print(_shadow_line(reply.shadow))


def _shadow_line(shadow: dict) -> str:
    """The running error of the twin's shadow predictions (service time, actual vs predicted)."""
    if not shadow.get("tasks"):
        return "twin shadow predictions: no completed task to compare yet"
    return (f"twin shadow predictions, last {shadow['tasks']:,} completions: service time off by "
            f"{shadow['median_abs_error']:.1%} (median |actual/predicted - 1|), {shadow['mean_error']:+.1%} on average")


def _fleet_table(reply) -> Table:
    table = new_table(title=f"fleet: {len(reply.nodes)} nodes, {reply.running} running, {reply.waiting} waiting")
    for col in ("node", "device", "owner", "status", "running / slots", "free GB", "thermal", "power", "last report",
                "core speed", "twin error"):
        table.add_column(col, justify="right" if col in ("running / slots", "free GB", "last report", "core speed", "twin error") else "left")
    for n in reply.nodes:
        table.add_row(n.node_id, n.device, n.owner, n.status, f"{n.running} / {n.slots}",
                      f"{n.free_memory_gb:.1f}", n.thermal, n.power, f"{n.last_report_s_ago:.1f} s ago",
                      "-" if n.speed_relative is None else f"{n.speed_relative:.2f}x",
                      "-" if n.shadow_error is None else f"{n.shadow_error:.1%}")
    table.caption = "\n".join(line for line in (_shadow_line(reply.shadow), _budget_line(reply.budgets)) if line)
    return table


def _budget_line(budgets) -> str:
    """``cloud spend this period: team 0.42 of 5.00 USD (month), ...`` ("" without budgets)."""
    parts = [f"{b.account} {b.spent_usd:.4g} of {b.limit_usd:.4g} USD ({b.period})" for b in budgets]
    return "cloud spend this period: " + ", ".join(parts) if parts else ""


async def _fleet_view(client):
    """The fleet table, and below it the machines on the network waiting to join (answered
    by `heddle up`; absent where no one answers, e.g. a bare `heddle scheduler`)."""
    import nats.errors
    from rich.console import Group

    from heddle.live.cluster.access import DISCOVERED_SUBJECT
    from heddle.live.cluster.service import DiscoveredReply

    table = _fleet_table(await client.fleet())
    try:
        answer = await client.nc.request(DISCOVERED_SUBJECT, b"{}", timeout=WAITING_TIMEOUT_S)
        waiting = DiscoveredReply.model_validate_json(answer.data).nodes
    except nats.errors.Error:  # no responder, no answer, or not allowed to ask
        return table
    if not waiting:
        return table
    listed = new_table(title=f"on the network, not joined: {len(waiting)}",
                   caption="on that machine, type the join code `heddle up` printed")
    for col in ("node", "device", "address"):
        listed.add_column(col)
    for node in waiting:
        listed.add_row(node.node_id, node.device or "?", node.address)
    return Group(table, listed)


def fleet(
    nats: NatsOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep the table live until Ctrl-C.")] = False,
    credentials: CredentialsOpt = None,
) -> None:
    """The nodes the control plane knows, as their reports describe them, and the machines
    on the network waiting to join."""
    url = _url(nats, credentials)
    if not watch:
        out.print(_run(_with_client(url, _fleet_view, credentials)))
        return
    from rich.live import Live

    async def action(client):
        import asyncio

        with Live(await _fleet_view(client), console=out.real(), refresh_per_second=4) as live:
            while True:
                await asyncio.sleep(WAIT_POLL_S)  # the refresh period of a live table
                live.update(await _fleet_view(client))

    try:
        _run(_with_client(url, action, credentials))
    except KeyboardInterrupt:
        pass


def drain(
    node: Annotated[str, typer.Argument(metavar="NODE", help="Node id.")],
    nats: NatsOpt = None,
    deadline: Annotated[float | None, typer.Option("--deadline", min=0.1, help="Seconds in-flight work gets.")] = None,
    credentials: CredentialsOpt = None,
) -> None:
    """Send no new work to NODE; its in-flight work finishes, then it leaves."""
    _run(_with_client(_url(nats, credentials), lambda c: c.drain(node, deadline), credentials))
    out.print(f"draining {node}")


def cancel(
    task: Annotated[str, typer.Argument(metavar="TASK", help="Task id (as `heddle status JOB` lists it).")],
    nats: NatsOpt = None,
    credentials: CredentialsOpt = None,
) -> None:
    """Cancel a waiting or running task (a user: one of its own)."""
    _run(_with_client(_url(nats, credentials), lambda c: c.cancel(task), credentials))
    out.print(f"cancelled {task}")


# -- up -------------------------------------------------------------------------------------------
def up(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="JetStream store and state (default ~/.heddle).")] = None,
    host: Annotated[str, typer.Option(help="Address nats-server listens on (0.0.0.0: other machines may join).")] = "0.0.0.0",
    port: Annotated[int, typer.Option(min=0, max=65535, help="NATS port (0: any free port).")] = 4222,
    node_id: Annotated[str | None, typer.Option("--node-id", help="This machine's node id (default: host name).")] = None,
    slots: Annotated[int | None, typer.Option("--slots", min=1, help="Tasks this machine runs at once.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Catalog device id of this machine.")] = None,
    no_agent: Annotated[bool, typer.Option("--no-agent", help="Do not run work on this machine.")] = False,
    gateway: Annotated[bool, typer.Option("--gateway", help="Also serve the OpenAI/Ollama-compatible API (heddle gateway; keys in <data dir>/gateway-keys.yaml).")] = False,
    gateway_port: Annotated[int, typer.Option("--gateway-port", min=0, max=65535, help="The gateway's HTTP port (on 127.0.0.1).")] = 11435,
    name: Annotated[str | None, typer.Option("--name", help="The cluster's name on the network (default: host name).")] = None,
    no_announce: Annotated[bool, typer.Option("--no-announce", help="Do not announce the cluster over mDNS.")] = False,
    no_tls: Annotated[bool, typer.Option("--no-tls", help="A new cluster without TLS (only on a network you trust).")] = False,
    fleet_file: Annotated[str | None, typer.Option("--fleet", metavar="FLEET", help="Fleet YAML or shipped fleet name whose cloud_offers and budgets the control plane applies (as heddle scheduler --fleet).")] = None,
) -> None:
    """Start a cluster: nats-server with access control, the control plane, the join service
    and mDNS announcement, and a local agent; prints the join code. Ctrl-C stops it all."""
    from heddle.live.cluster.roster import JOIN_CODE_VALID_S
    from heddle.live.up import Cluster, UpError

    settings = _settings(data_dir=data_dir)
    control_args: list[str] = []
    if fleet_file is not None:  # checked here, so a bad file stops nothing half-started
        control_args = ["--fleet", str(_load_terms(fleet_file)[1].resolve())]
    gateway_child = None
    if gateway:  # (importing the gateway package loads its web stack: only when asked)
        from heddle.gateway.settings import READY_LINE as GATEWAY_READY

        gateway_child = (["--data-dir", str(settings.data_dir), "--port", str(gateway_port)], GATEWAY_READY)

    def joined(node: str) -> None:
        out.print(f"node [bold]{node}[/] joined (its join code is used up: `heddle join-code` makes the next one)",
                  highlight=False, soft_wrap=True)

    try:
        cluster = Cluster(settings.data_dir, host, port, node_id=node_id, slots=slots, device=device,
                          agent=not no_agent, gateway=gateway_child, name=name,
                          announce=not no_announce, tls=not no_tls, on_joined=joined, control_args=control_args)
    except UpError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    import signal

    def stop_on_term(signum, frame):  # a service manager's stop is a Ctrl-C: stop in order
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_term)
    # Python makes SIGINT a KeyboardInterrupt only if it was not ignored when the process
    # started: `heddle up` started by a parent that ignores it (a script's background job,
    # nohup) never stopped on Ctrl-C or a supervisor's SIGINT, and its children outlived it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cluster.start()
    except (UpError, KeyboardInterrupt) as exc:
        cluster.stop()
        if isinstance(exc, UpError):
            err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"heddle is up: cluster [bold]{cluster.name}[/], NATS at [bold]{cluster.url}[/] "
              f"(JetStream store in {cluster.store_dir})", highlight=False, soft_wrap=True)
    out.print(f"join code: [bold]{cluster.join_code}[/]   (one machine, within {JOIN_CODE_VALID_S / 60:g} min; fingerprint "
              f"{cluster.roster.fingerprint})", highlight=False, soft_wrap=True)
    out.print(f"another machine joins with:  [bold]heddle agent --join-code {cluster.join_code}[/]"
              f"   (add --nats {cluster.join_url} if it does not find the cluster)", highlight=False, soft_wrap=True)
    out.print("submit work with:  heddle submit FILE   (Ctrl-C stops everything)", highlight=False, soft_wrap=True)
    failed = False
    try:
        cluster.wait()
    except KeyboardInterrupt:
        out.print("stopping: the agent drains, then the control plane and nats-server stop")
    except UpError as exc:
        err.print(f"[red]error:[/] {exc}; stopping the rest")
        failed = True
    code = cluster.stop()
    raise typer.Exit(1 if failed else code)


def register(app: typer.Typer) -> None:
    """Mount the live commands on the main app (one line in heddle/cli/main.py)."""
    # `heddle fleet` is a group (the table, and `fleet export`): heddle/cli/twin.py mounts it
    for name, fn in (("up", up), ("scheduler", scheduler), ("submit", submit), ("status", status),
                     ("drain", drain), ("cancel", cancel)):
        app.command(name)(fn)



if __name__ == "__main__":  # `python -m heddle.cli.live scheduler ...`: without the other commands' imports
    from heddle.cli import twin

    _app = typer.Typer()
    register(_app)
    twin.register(_app)  # `heddle fleet` (and `fleet export`)
    _app()
