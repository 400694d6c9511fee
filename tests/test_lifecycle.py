from __future__ import annotations

import logging

import pytest

from pusherd.lifecycle import ChannelOccupied, Lifecycle, Record, Subscribed


def test_lifecycle_is_inactive_until_someone_listens() -> None:
    lifecycle = Lifecycle()
    assert not lifecycle.active
    assert not lifecycle.wants(Subscribed)


def test_lifecycle_delivers_records_of_the_kinds_listened_to() -> None:
    lifecycle = Lifecycle()
    seen: list[Record] = []
    lifecycle.listen(seen.append, Subscribed)
    assert lifecycle.active and lifecycle.wants(Subscribed)
    assert not lifecycle.wants(ChannelOccupied)
    lifecycle.emit(Subscribed("1", "1.2", "news"))
    lifecycle.emit(ChannelOccupied("1", "news"))
    assert seen == [Subscribed("1", "1.2", "news")]


def test_lifecycle_stop_removes_only_that_listener() -> None:
    lifecycle = Lifecycle()
    first: list[Record] = []
    second: list[Record] = []
    stop_first = lifecycle.listen(first.append, Subscribed, ChannelOccupied)
    lifecycle.listen(second.append, Subscribed)
    stop_first()
    assert lifecycle.active and not lifecycle.wants(ChannelOccupied)
    lifecycle.emit(Subscribed("1", "1.2", "news"))
    assert first == [] and len(second) == 1


def test_lifecycle_becomes_inactive_when_the_last_listener_stops() -> None:
    lifecycle = Lifecycle()
    stop = lifecycle.listen(lambda record: None, Subscribed)
    stop()
    assert not lifecycle.active and not lifecycle.wants(Subscribed)


def test_lifecycle_logs_a_failing_listener_and_reaches_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle = Lifecycle()
    seen: list[Record] = []

    def broken(record: Record) -> None:
        raise RuntimeError("boom")

    lifecycle.listen(broken, Subscribed)
    lifecycle.listen(seen.append, Subscribed)
    with caplog.at_level(logging.ERROR, "pusherd.lifecycle"):
        lifecycle.emit(Subscribed("1", "1.2", "news"))
    assert len(seen) == 1
    assert "lifecycle listener failed on Subscribed" in caplog.text
