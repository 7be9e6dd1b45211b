"""`heddle join`, `heddle join-code`, `heddle nodes list|revoke`, `heddle users
add|list|revoke`, `heddle clusters`: form a cluster and decide who may use it (docs/live.md,
"Cluster formation and access")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import LazyConsole

out = LazyConsole(soft_wrap=True)
err = LazyConsole(stderr=True, soft_wrap=True)

DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where the cluster's state lives (default ~/.heddle).")]
nodes_app = typer.Typer(help="The cluster's members: list them, revoke one.", no_args_is_help=True)
users_app = typer.Typer(help="People who use the cluster from their own machines: add, list, revoke.",
                        no_args_is_help=True)
PERSON_ROLES = ("user", "observer")
"""The roles `heddle users add` gives (the admin and gateway logins are `heddle up`'s)."""


def _data_dir(data_dir: Path | None) -> Path:
    from heddle.cli.live import _settings

    return _settings(data_dir=data_dir).data_dir


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(1)


def _roster(data_dir: Path | None):
    from heddle.live.cluster import AccessError, Roster

    try:
        return Roster.load(_data_dir(data_dir))
    except AccessError as exc:
        raise _fail(str(exc)) from None


def join(
    code: Annotated[str, typer.Argument(metavar="CODE", help="The join code `heddle join-code` printed on the cluster.")],
    nats: Annotated[str | None, typer.Option("--nats", help="The cluster's NATS URL (default: found on the LAN).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Which discovered cluster, if several.")] = None,
    node_id: Annotated[str | None, typer.Option("--node-id", help="This machine's node id (default: host name).")] = None,
    data_dir: DataDirOpt = None,
    wait: Annotated[float, typer.Option("--wait", min=0.1, help="Seconds to listen for clusters (without --nats).")] = 3.0,
) -> None:
    """Exchange a join code for this machine's own credentials (stored 0600 in the data dir)."""
    import asyncio

    from pydantic import ValidationError

    from heddle.events.acl import mask_secret
    from heddle.live.agent.settings import default_node_id
    from heddle.live.cluster.join import JoinError
    from heddle.live.cluster.join import join as do_join

    found = None if nats else discovered(cluster, wait)
    url = nats or found.url
    node = node_id or default_node_id()  # the id `heddle agent` takes by default
    try:
        credentials = asyncio.run(do_join(url, code, node, _data_dir(data_dir), found and found.fingerprint))
    except ValidationError:
        raise _fail(f"option --node-id: {node!r} is not a valid id (letters, digits, '_' and '-')") from None
    except JoinError as exc:
        raise _fail(str(exc)) from None
    out.print(f"joined {url} as node [bold]{credentials.user}[/]; password {mask_secret(credentials.password)}, "
              f"stored in {_data_dir(data_dir) / 'credentials.json'}", highlight=False)
    say_pinned(credentials, found)


def say_pinned(credentials, found) -> None:
    """Show the certificate a join pinned without an mDNS fingerprint to check it against."""
    if credentials.tls_cert is not None and found is None:
        from heddle.live.cluster.tls import fingerprint

        out.print(f"the cluster's certificate, now trusted: fingerprint {fingerprint(credentials.tls_cert)} "
                  f"(compare it with the one `heddle up` printed)", highlight=False)


def join_code(
    data_dir: DataDirOpt = None,
    minutes: Annotated[float, typer.Option("--minutes", min=0.01, max=7 * 24 * 60, help="How long the code works.")] = 10.0,
) -> None:
    """Make a new join code (the old one stops working) and print it: it is shown only now,
    and lets one machine join within --minutes (default 10)."""
    roster = _roster(data_dir)
    code = roster.rotate_join_code(minutes * 60)
    roster.save()
    reloaded = roster.reload_server()
    out.print(f"join code: [bold]{code}[/]   (one machine, within {minutes:g} min; on it: heddle join {code})",
              highlight=False)
    if not reloaded:
        out.print("nats-server is not running: the code works once it starts", highlight=False)


@nodes_app.command("list")
def nodes_list(data_dir: DataDirOpt = None) -> None:
    """The members allowed on this cluster and their roles (never their passwords)."""
    from heddle.live.cluster.access import CONTROL_USER, JOIN_USER

    for member in _roster(data_dir).members.values():
        if member.name not in (CONTROL_USER, JOIN_USER):
            out.print(f"{member.name}\t{member.role}", highlight=False)


@nodes_app.command("revoke")
def nodes_revoke(
    node: Annotated[str, typer.Argument(metavar="NODE", help="The node (or user) to remove.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove a node's access at once: nats-server reloads and closes its connection."""
    _revoke(node, data_dir)


def _revoke(name: str, data_dir: Path | None, roles: tuple[str, ...] | None = None) -> None:
    """Remove a member (of one of ``roles``, if given) and reload the running server."""
    from heddle.live.cluster import AccessError

    roster = _roster(data_dir)
    member = roster.members.get(name)
    if roles is not None and member is not None and member.role not in roles:
        raise _fail(f"{name} is a{'n' if member.role[0] in 'aeiou' else ''} {member.role}, not a person's login "
                    f"(`heddle nodes revoke {name}` removes it)")
    try:
        roster.revoke(name)
    except AccessError as exc:
        raise _fail(str(exc)) from None
    roster.save()
    when = "now" if roster.reload_server() else "when nats-server next starts (it is not running)"
    out.print(f"revoked {name}: its credentials stop working {when}", highlight=False)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The person's login name (letters, digits, '_' and '-').")],
    role: Annotated[str, typer.Option("--role", help="user: submits and reads its own jobs; observer: reads the fleet view only.")] = "user",
    owner: Annotated[str | None, typer.Option("--owner", help="The owner id its personal work runs as (default: NAME; users only).")] = None,
    account: Annotated[str | None, typer.Option("--account", help="The account its work is billed to (users only).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write its credentials file (default <data dir>/users/NAME.json).")] = None,
    nats: Annotated[str | None, typer.Option("--nats", help="The NATS URL its machine reaches the cluster at (default: the one `heddle up` announces).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Give a person on another machine a login: writes its credentials file (0600) to hand
    over; the password in it is never printed."""
    from heddle.events.acl import mask_secret
    from heddle.live.cluster import AccessError
    from heddle.live.cluster.join import Credentials

    if role not in PERSON_ROLES:
        raise _fail(f"option --role: expected one of {', '.join(PERSON_ROLES)}, got {role!r}")
    if role != "user" and (owner or account):
        raise _fail("options --owner and --account: only a user submits work, an observer has neither")
    roster = _roster(data_dir)
    if name in roster.members:
        raise _fail(f"name: {name!r} is already a member ({roster.members[name].role}); "
                    f"`heddle users revoke {name}` first to give it a new login")
    url = nats or roster.address
    if url is None:
        raise _fail("option --nats: the cluster's address is not known yet (start `heddle up` once, or give --nats URL)")
    try:
        member = roster.add(name, role, owner=(owner or name) if role == "user" else "", account=account or "")
    except AccessError as exc:
        raise _fail(str(exc)) from None
    roster.save()
    reloaded = roster.reload_server()
    login = Credentials(nats_url=url, user=name, password=member.password, tls_cert=roster.certificate,
                        role=role, owner=member.owner, account=member.account)
    path = (output or _data_dir(data_dir) / "users" / f"{name}.json").expanduser()
    login.save(path.parent, path.name)
    out.print(f"added {name} ({role}{f', owner {member.owner}' if member.owner else ''}"
              f"{f', account {member.account}' if member.account else ''}); password {mask_secret(member.password)}",
              highlight=False)
    out.print(f"its login is in {path} (readable only by you): hand it over privately; on {name}'s machine "
              f"save it as ~/.heddle/user-credentials.json (or pass --credentials FILE)", highlight=False)
    if not reloaded:
        out.print("nats-server is not running: the login works once it starts", highlight=False)


@users_app.command("list")
def users_list(data_dir: DataDirOpt = None) -> None:
    """The people with a login: name, role, owner, account (passwords shown only as their length)."""
    from heddle.events.acl import mask_secret

    for member in _roster(data_dir).members.values():
        if member.role in (*PERSON_ROLES, "admin"):
            out.print(f"{member.name}\t{member.role}\towner {member.owner or '-'}\taccount {member.account or '-'}"
                      f"\tpassword {mask_secret(member.password)}", highlight=False)


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The login to remove.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove a person's login at once: nats-server reloads and closes its connections."""
    _revoke(name, data_dir, (*PERSON_ROLES, "admin"))


def discovered(name: str | None, wait: float):
    """The cluster found on the LAN: the one named, the only one, or the one the user picks
    (asked only on a terminal)."""
    import sys

    from heddle.live.cluster.discovery import DiscoveryError, browse, choose

    found = browse(wait, until=(lambda f: any(c.name == name for c in f)) if name else None)

    def ask(clusters) -> str:
        for cluster in clusters:
            out.print(f"  {cluster.name}\t{cluster.url}\tfingerprint {cluster.fingerprint}", highlight=False)
        return typer.prompt("which cluster")

    try:
        cluster = choose(found, name, ask if sys.stdin.isatty() else None)
    except DiscoveryError as exc:
        raise _fail(str(exc)) from None
    out.print(f"found cluster [bold]{cluster.name}[/] at {cluster.url} (fingerprint {cluster.fingerprint})",
              highlight=False)
    return cluster


def clusters(
    wait: Annotated[float, typer.Option("--wait", min=0.1, help="Seconds to listen for answers.")] = 3.0,
) -> None:
    """List the heddle clusters that answer on the local network (mDNS)."""
    from heddle.live.cluster.discovery import browse

    found = browse(wait)
    if not found:
        out.print("no heddle cluster answered", highlight=False)
    for cluster in found:
        out.print(f"{cluster.name}\t{', '.join(cluster.nats_urls)}\tv{cluster.version}\tfingerprint {cluster.fingerprint}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Mount the cluster commands on the main app (one line in heddle/cli/main.py)."""
    app.command("join")(join)
    app.command("join-code")(join_code)
    app.command("clusters")(clusters)
    app.add_typer(nodes_app, name="nodes")
    app.add_typer(users_app, name="users")


if __name__ == "__main__":  # `python -m heddle.cli.cluster join ...`: without the other commands' imports
    _app = typer.Typer()
    register(_app)
    _app()
