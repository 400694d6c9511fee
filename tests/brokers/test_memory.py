"""``MemoryBroker`` specifics: options it ignores, an injected clock, local fan-out."""

from __future__ import annotations

from pusherd.brokers import create_broker
from pusherd.brokers.base import Envelope
from pusherd.brokers.memory import MemoryBroker
from pusherd.metrics import Metrics
from tests.brokers.conftest import Inbox

__all__: list[str] = []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_broker_accepts_cluster_options() -> None:
    broker = create_broker("memory", node_id="n", heartbeat_interval=1.0, metrics=Metrics())
    assert isinstance(broker, MemoryBroker)
    assert repr(broker) == "MemoryBroker()"
    assert broker.ready


async def test_memory_publish_delivers_without_subscribe() -> None:
    broker, inbox = MemoryBroker(), Inbox()
    await broker.start(inbox.deliver)
    await broker.publish(Envelope("app", "c", b"x"))
    assert inbox.envelopes == [Envelope("app", "c", b"x")]
    await broker.close()
    await broker.publish(Envelope("app", "c", b"after-close"))
    assert len(inbox.envelopes) == 1


async def test_memory_cache_and_marks_follow_the_clock() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    await broker.cache_set("app", "cache-c", b"x", 10.0)
    clock.now += 4.0
    assert await broker.cache_get("app", "cache-c") == (b"x", 6.0)
    assert await broker.claim("app", "k", 5.0)
    clock.now += 6.0
    assert await broker.cache_get("app", "cache-c") is None
    assert not await broker.release("app", "k")
    assert await broker.claim("app", "k", 5.0)
