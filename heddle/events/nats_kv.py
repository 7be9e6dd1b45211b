"""KeyValueStore on a NATS JetStream KV bucket.

NATS KV keys may not contain ':', so the seed's layout maps one-to-one onto '.'-separated
keys: ``heddle:events:snapshot:Job:j1`` is stored as ``heddle.events.snapshot.Job.j1``.
Per-key TTLs (used by leases) need nats-server >= 2.11 and a bucket whose stream has
``allow_msg_ttl``; older servers silently ignore the TTL, so this store refuses TTL claims
there (LeaseUnsupportedError) instead of handing out leases that never expire.
A write the server refuses for permissions raises PublishPermissionError at once (for a
store built by ``open``, which knows its connection and bucket), not after a timeout.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TypeVar

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from heddle.events.errors import LeaseUnsupportedError
from heddle.events.jetstream_acks import raise_if_refused
from heddle.events.kv import KeyValueStore, check_ttl_s

__all__ = [
    "DEFAULT_BUCKET",
    "MIN_MSG_TTL_SERVER_VERSION",
    "NatsKeyValueStore",
    "msg_ttl_supported",
    "nats_key",
]

DEFAULT_BUCKET = "heddle"
"""KV bucket used when none is given (stream ``KV_heddle``)."""
MIN_MSG_TTL_SERVER_VERSION = (2, 11)
"""First nats-server release honouring per-message TTL (Nats-TTL header), per its notes."""

T = TypeVar("T")

_NATS_KEY_RE = re.compile(r"^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$")
_STREAM_NAME_IN_USE = 10058


def nats_key(key: str) -> str:
    """Map a seed-style ``a:b:c`` key to the NATS KV key ``a.b.c`` (ValueError if invalid)."""
    mapped = key.replace(":", ".")
    if not _NATS_KEY_RE.match(mapped):
        raise ValueError(
            f"key {key!r} cannot be stored in NATS KV: segments must be non-empty and use "
            "only letters, digits, '-', '_', '/', '='"
        )
    return mapped


def msg_ttl_supported(server_version: str) -> bool:
    """True if a nats-server of this version (e.g. '2.11.4') honours per-message TTLs."""
    match = re.match(r"^v?(\d+)\.(\d+)", server_version)
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2))) >= MIN_MSG_TTL_SERVER_VERSION


CLAIM_ATTEMPTS = 3
"""Creates `set_if_not_exists` tries while the key it found taken keeps expiring under it."""


class NatsKeyValueStore(KeyValueStore):
    """A KeyValueStore over one JetStream KV bucket. Build it with ``await open(nc)``.

    Built directly, pass ``nc`` and ``bucket`` too so that refused writes fail promptly.
    """

    def __init__(
        self,
        kv: KeyValue,
        *,
        ttl_supported: bool,
        reason: str = "",
        nc: NATS | None = None,
        bucket: str | None = None,
    ) -> None:
        self._kv = kv
        self.ttl_supported = ttl_supported
        self._unsupported_reason = reason
        self._nc = nc
        self._bucket = bucket

    async def _write(self, key: str, operation: Awaitable[T]) -> T:
        if self._nc is None or self._bucket is None:
            return await operation
        return await raise_if_refused(self._nc, f"$KV.{self._bucket}.{key}", operation)

    @classmethod
    async def open(
        cls, nc: NATS, bucket: str = DEFAULT_BUCKET, *, create: bool = True
    ) -> NatsKeyValueStore:
        """Create the bucket (history 1, file storage, per-key TTL allowed) or bind to it
        (``create=False`` only binds: for roles that may not manage streams), and find out
        whether per-key TTLs will be honoured."""
        js = nc.jetstream()
        kv = None
        if create:
            try:
                kv = await js.create_key_value(
                    api.KeyValueConfig(bucket=bucket, history=1, storage=api.StorageType.FILE)
                )
            except BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
        if kv is None:
            kv = await js.key_value(bucket)  # exists (maybe configured by someone else)
        server = nc.connected_server_version
        version = f"{server.major}.{server.minor}.{server.patch}"
        info = await js.stream_info(f"KV_{bucket}")
        if not msg_ttl_supported(version):
            reason = f"nats-server {version} is older than 2.11"
        elif not info.config.allow_msg_ttl:
            reason = f"bucket {bucket!r} was created without allow_msg_ttl"
        else:
            reason = ""
        return cls(kv, ttl_supported=not reason, reason=reason, nc=nc, bucket=bucket)

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(nats_key(key))
        except KeyNotFoundError:
            return None
        return entry.value

    async def put(self, key: str, value: bytes) -> None:
        mapped = nats_key(key)
        await self._write(mapped, self._kv.put(mapped, value))

    async def delete(self, key: str) -> None:
        mapped = nats_key(key)
        await self._write(mapped, self._kv.delete(mapped))

    async def set_if_not_exists(self, key: str, value: bytes, ttl_s: int | None = None) -> bool:
        check_ttl_s(ttl_s)
        if ttl_s is not None and not self.ttl_supported:
            raise LeaseUnsupportedError(
                f"refusing a {ttl_s}s claim on {key!r}: {self._unsupported_reason}; the key "
                "would never expire"
            )
        mapped = nats_key(key)
        for _ in range(CLAIM_ATTEMPTS):
            try:
                await self._write(mapped, self._kv.create(mapped, value, msg_ttl=ttl_s))
            except KeyWrongLastSequenceError:
                return False
            except KeyNotFoundError:
                # nats-py's create, refused because the key was there, looks the key up to see
                # whether it was deleted; gone by then (its TTL ran out in between), the key
                # is free: claim it again
                continue
            return True
        return False
