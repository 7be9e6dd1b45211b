"""Finding clusters on the LAN with mDNS (zeroconf): a cluster announces itself as
``<name>._heddle._tcp.local.`` with TXT records naming it, its NATS URL(s), the wire
protocol version and a fingerprint of its identity; `browse` lists what answers.

The announcement says where to connect, never how to log in: joining still needs the code.
Registering takes ~1.7 s (zeroconf probes the name first), so `Announcer.start` runs off the
hot path, in its own thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from heddle.live import protocol as p

__all__ = ["SERVICE_TYPE", "Announcer", "DiscoveredCluster", "DiscoveryError", "browse", "choose"]

SERVICE_TYPE = "_heddle._tcp.local."
BROWSE_S = 3.0
"""How long `browse` listens when no cluster it waits for shows up (answers take ~1 s)."""
POLL_S = 0.05


class DiscoveryError(RuntimeError):
    """No cluster found, or several and no way to choose."""


@dataclass(frozen=True, slots=True)
class DiscoveredCluster:
    name: str
    nats_urls: tuple[str, ...]
    version: str
    fingerprint: str

    @property
    def url(self) -> str:
        return self.nats_urls[0]


def _info(cluster: DiscoveredCluster, address: str, port: int) -> ServiceInfo:
    return ServiceInfo(
        SERVICE_TYPE, f"{cluster.name}.{SERVICE_TYPE}", addresses=[socket.inet_aton(address)], port=port,
        properties={"name": cluster.name, "nats": ",".join(cluster.nats_urls), "v": cluster.version,
                    "fp": cluster.fingerprint},
        server=f"{cluster.name}.local.")


def _parse(info: ServiceInfo) -> DiscoveredCluster | None:
    """The cluster a service record describes; None for a record missing a field."""
    props = {k.decode(): (v or b"").decode(errors="replace") for k, v in (info.properties or {}).items()}
    if not all(props.get(k) for k in ("name", "nats", "v", "fp")):
        return None
    return DiscoveredCluster(props["name"], tuple(props["nats"].split(",")), props["v"], props["fp"])


class Announcer:
    """Announce one cluster until ``close()``. ``interface`` is the address to answer on
    (the LAN address for `heddle up`, 127.0.0.1 in tests)."""

    def __init__(self, cluster: DiscoveredCluster, interface: str, port: int) -> None:
        self.cluster = cluster
        self.zeroconf = Zeroconf(interfaces=[interface], ip_version=IPVersion.V4Only)
        self.info = _info(cluster, interface, port)
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
    def __init__(self) -> None:
        self.found: dict[str, DiscoveredCluster] = {}
        self.lock = threading.Lock()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=2000)
        cluster = _parse(info) if info is not None else None
        if cluster is not None and cluster.version.split(".")[0] == str(p.PROTOCOL_MAJOR):
            with self.lock:
                self.found[name] = cluster

    update_service = add_service

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self.lock:
            self.found.pop(name, None)


def browse(wait_s: float = BROWSE_S, *, until: Callable[[list[DiscoveredCluster]], bool] | None = None,
           interfaces: Sequence[str] | None = None) -> list[DiscoveredCluster]:
    """Clusters (speaking this protocol major) that answer within ``wait_s`` seconds, or as
    soon as ``until(found)`` holds; sorted by name."""
    zc = Zeroconf(interfaces=list(interfaces)) if interfaces else Zeroconf()
    collector = _Collector()
    browser = ServiceBrowser(zc, SERVICE_TYPE, collector)
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            with collector.lock:
                found = sorted(collector.found.values(), key=lambda c: c.name)
            if until is not None and until(found):
                return found
            time.sleep(POLL_S)  # the browser answers on its own thread; we poll its result
        with collector.lock:
            return sorted(collector.found.values(), key=lambda c: c.name)
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
