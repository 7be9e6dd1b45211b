"""One contract for every KeyValueStore: in memory (injected clock) and NATS JetStream KV."""

from __future__ import annotations

import uuid

import pytest

from heddle.events.kv import InMemoryKeyValueStore
from heddle.events.nats_kv import NatsKeyValueStore
from heddle.events.testing import wait_until

EXPIRY_TIMEOUT_S = 10.0
"""Upper bound to wait for a 1 s TTL on a loaded machine (the server expires keys lazily)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """A store plus a way to let ``seconds`` pass for it."""

    def __init__(self, store, clock: FakeClock | None = None) -> None:
        self.store = store
        self._clock = clock

    def let_time_pass(self, seconds: float) -> None:
        if self._clock is not None:
            self._clock.now += seconds  # the real server's clock moves on its own


@pytest.fixture(params=["memory", "nats"])
async def backend(request, connect):
    if request.param == "memory":
        clock = FakeClock()
        return Backend(InMemoryKeyValueStore(clock=clock), clock)
    nc = await connect()
    return Backend(await NatsKeyValueStore.open(nc, bucket=f"kv{uuid.uuid4().hex[:10]}"))


async def gone(store, key) -> bool:
    return await store.get(key) is None


async def test_missing_key_reads_as_none(backend):
    assert await backend.store.get("heddle:events:snapshot:Job:nothing") is None


async def test_put_get_overwrite_delete(backend):
    kv, key = backend.store, "heddle:events:snapshot:Job:j1"
    await kv.put(key, b"one")
    assert await kv.get(key) == b"one"
    await kv.put(key, b"two")
    assert await kv.get(key) == b"two"
    await kv.delete(key)
    assert await kv.get(key) is None
    await kv.delete(key)  # deleting an absent key is fine


async def test_set_if_not_exists_only_first_wins(backend):
    kv, key = backend.store, "heddle:events:horizon:Task:t1"
    assert await kv.set_if_not_exists(key, b"first") is True
    assert await kv.set_if_not_exists(key, b"second") is False
    assert await kv.get(key) == b"first"
    await kv.delete(key)
    assert await kv.set_if_not_exists(key, b"third") is True
    assert await kv.get(key) == b"third"


async def test_claim_with_ttl_expires_and_can_be_claimed_again(backend):
    kv, key = backend.store, "heddle:events:horizon:Task:t2"
    assert await kv.set_if_not_exists(key, b"holder-a", ttl_s=1) is True
    assert await kv.set_if_not_exists(key, b"holder-b", ttl_s=1) is False
    backend.let_time_pass(1.0)
    await wait_until(lambda: gone(kv, key), timeout_s=EXPIRY_TIMEOUT_S)
    assert await kv.set_if_not_exists(key, b"holder-b", ttl_s=1) is True
    assert await kv.get(key) == b"holder-b"


async def test_keys_without_ttl_do_not_expire(backend):
    kv, key = backend.store, "heddle:events:horizon:Task:t3"
    assert await kv.set_if_not_exists(key, b"x") is True
    backend.let_time_pass(3600.0)
    assert await kv.get(key) == b"x"


@pytest.mark.parametrize("ttl_s", [0, -1, 0.5, 1.5, True])
async def test_ttl_must_be_whole_positive_seconds(backend, ttl_s):
    with pytest.raises(ValueError, match="whole number of seconds"):
        await backend.store.set_if_not_exists("heddle:events:horizon:Task:t4", b"x", ttl_s=ttl_s)
    assert await backend.store.get("heddle:events:horizon:Task:t4") is None
