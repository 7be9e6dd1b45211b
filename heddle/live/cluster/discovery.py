"""Finding clusters and machines on the LAN with mDNS (zeroconf).

A cluster (`heddle up`) announces itself as ``<name>._heddle._tcp.local.`` with TXT records
naming it, its NATS URL(s), the wire protocol version and a fingerprint of its identity;
`browse` lists what answers. A machine whose agent waits for a join code announces itself as
``<node>._heddle-node._tcp.local.`` (node id, device, protocol version), so the cluster can
show it in `heddle fleet` before it has joined (`NodeWatcher`).

An announcement says where to connect, never how to log in: joining still needs the code.
Registering takes ~1.7 s (zeroconf probes the name first), so `Announcer.start` runs off the
hot path, in its own thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from heddle.live import protocol as p

__all__ = ["NODE_SERVICE_TYPE", "SERVICE_TYPE", "Announcer", "DiscoveredCluster", "DiscoveredNode",
           "DiscoveryError", "NodeWatcher", "browse", "choose", "local_address_towards"]

SERVICE_TYPE = "_heddle._tcp.local."
NODE_SERVICE_TYPE = "_heddle-node._tcp.local."
BROWSE_S = 3.0
"""How long `browse` listens when no cluster it waits for shows up (answers take ~1 s)."""
POLL_S = 0.05
INFO_TIMEOUT_MS = 2000
"""How long a found service may take to answer for its TXT records."""


class DiscoveryError(RuntimeError):
    """No cluster found, or several and no way to choose."""


@dataclass(frozen=True, slots=True)
class DiscoveredCluster:
    name: str
    nats_urls: tuple[str, ...]
    version: str
    fingerprint: str
    service_type: ClassVar[str] = SERVICE_TYPE

    @property
    def url(self) -> str:
        return self.nats_urls[0]

    @property
    def instance(self) -> str:
        return self.name

    def properties(self) -> dict[str, str]:
        return {"name": self.name, "nats": ",".join(self.nats_urls), "v": self.version, "fp": self.fingerprint}

    @classmethod
    def parse(cls, props: dict[str, str], address: str) -> DiscoveredCluster | None:
        if not all(props.get(k) for k in ("name", "nats", "v", "fp")):
            return None
        return cls(props["name"], tuple(props["nats"].split(",")), props["v"], props["fp"])


@dataclass(frozen=True, slots=True)
class DiscoveredNode:
    """A machine whose agent waits to join; ``address`` is where its announcement came from."""

    node_id: str
    device: str
    version: str
    address: str = ""
    service_type: ClassVar[str] = NODE_SERVICE_TYPE

    @property
    def instance(self) -> str:
        return self.node_id

    def properties(self) -> dict[str, str]:
        return {"node": self.node_id, "device": self.device, "v": self.version}

    @classmethod
    def parse(cls, props: dict[str, str], address: str) -> DiscoveredNode | None:
        if not props.get("node") or not props.get("v"):
            return None
        return cls(props["node"], props.get("device", ""), props["v"], address)


Record = DiscoveredCluster | DiscoveredNode


def _info(record: Record, address: str, port: int) -> ServiceInfo:
    kind = record.service_type
    return ServiceInfo(kind, f"{record.instance}.{kind}", addresses=[socket.inet_aton(address)], port=port,
                       properties=record.properties(), server=f"{record.instance}.local.")


def _parse(info: ServiceInfo, kind: type) -> Record | None:
    """The record a service describes; None for one missing a field or speaking another
    protocol major."""
    props = {k.decode(): (v or b"").decode(errors="replace") for k, v in (info.properties or {}).items()}
    addresses = info.parsed_addresses()
    record = kind.parse(props, addresses[0] if addresses else "")
    if record is None or record.version.split(".")[0] != str(p.PROTOCOL_MAJOR):
        return None
    return record


def local_address_towards(host: str) -> str:
    """This machine's address on the way to ``host`` (no packet is sent): where an
    announcement meant for ``host``'s network should answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class Announcer:
    """Announce one cluster or waiting node until ``close()``. ``interface`` is the address to
    answer on (the LAN address for `heddle up`, 127.0.0.1 in tests)."""

    def __init__(self, record: Record, interface: str, port: int = 0) -> None:
        self.record = record
        self.zeroconf = Zeroconf(interfaces=[interface], ip_version=IPVersion.V4Only)
        self.info = _info(record, interface, port)
        self.registered = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Announcer:
        def register() -> None:
            self.zeroconf.register_service(self.info, allow_name_change=True)
            self.registered.set()

        self._thread = threading.Thread(target=register, name="heddle-mdns", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.registered.is_set():
            self.zeroconf.unregister_service(self.info)
        self.zeroconf.close()


class _Collector(ServiceListener):
    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.found: dict[str, Record] = {}
        self.lock = threading.Lock()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=INFO_TIMEOUT_MS)
        record = _parse(info, self.kind) if info is not None else None
        if record is not None:
            with self.lock:
                self.found[name] = record

    update_service = add_service

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self.lock:
            self.found.pop(name, None)

    def records(self) -> list:
        with self.lock:
            return sorted(self.found.values(), key=lambda r: r.instance)


class NodeWatcher:
    """Machines waiting to join, as long as they announce themselves; until ``close()``."""

    def __init__(self, interfaces: Sequence[str] | None = None) -> None:
        self.zeroconf = Zeroconf(interfaces=list(interfaces)) if interfaces else Zeroconf()
        self.collector = _Collector(DiscoveredNode)
        self.browser = ServiceBrowser(self.zeroconf, NODE_SERVICE_TYPE, self.collector)

    def found(self) -> list[DiscoveredNode]:
        return self.collector.records()

    def close(self) -> None:
        self.browser.cancel()
        self.zeroconf.close()


def browse(wait_s: float = BROWSE_S, *, until: Callable[[list[DiscoveredCluster]], bool] | None = None,
           interfaces: Sequence[str] | None = None) -> list[DiscoveredCluster]:
    """Clusters (speaking this protocol major) that answer within ``wait_s`` seconds, or as
    soon as ``until(found)`` holds; sorted by name."""
    zc = Zeroconf(interfaces=list(interfaces)) if interfaces else Zeroconf()
    collector = _Collector(DiscoveredCluster)
    browser = ServiceBrowser(zc, SERVICE_TYPE, collector)
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            found = collector.records()
            if until is not None and until(found):
                return found
            time.sleep(POLL_S)  # the browser answers on its own thread; we poll its result
        return collector.records()
    finally:
        browser.cancel()
        zc.close()


def choose(found: list[DiscoveredCluster], name: str | None,
           ask: Callable[[list[DiscoveredCluster]], str] | None = None) -> DiscoveredCluster:
    """The cluster to join: the one named, the only one, or the one ``ask`` picks."""
    if name is not None:
        for cluster in found:
            if cluster.name == name:
                return cluster
        raise DiscoveryError(f"option --cluster: no cluster {name!r} on the network "
                             f"(found: {', '.join(c.name for c in found) or 'none'})")
    if not found:
        raise DiscoveryError("no heddle cluster answered on the network; give --nats URL")
    if len(found) == 1:
        return found[0]
    if ask is None:
        raise DiscoveryError(f"several clusters found ({', '.join(c.name for c in found)}); choose one with --cluster NAME")
    return choose(found, ask(found))
