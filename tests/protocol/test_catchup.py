"""The merge of a history replay and the live stream, on sequence numbers alone."""

from __future__ import annotations

from pusherd.protocol.catchup import FRAME_OVERHEAD, Catchup, Replay, Step, fitting
from pusherd.protocol.history import Retained

__all__: list[str] = []


def _retained(*seqs: int, sender: str | None = None) -> list[Retained]:
    return [Retained(seq, b"e%d" % seq, 1000.0 + seq, sender) for seq in seqs]


def test_catchup_holds_live_events_until_the_replay_is_read() -> None:
    state = Catchup()
    assert state.replaying
    assert state.live(4, b"e4", None, in_order=True) is Step.HOLD
    assert state.live(5, b"e5", None, in_order=True) is Step.HOLD
    assert state.held == [(4, b"e4", None), (5, b"e5", None)]


def test_catchup_finish_sends_the_replay_then_only_the_held_events_above_it() -> None:
    state = Catchup()
    for seq in (3, 4, 5):  # 3 and 4 were published before the read: in both
        state.live(seq, b"e%d" % seq, None, in_order=True)
    replay = state.finish(_retained(1, 2, 3, 4), "1.1")
    assert replay == Replay([b"e1", b"e2", b"e3", b"e4", b"e5"], replayed=4, dropped=2, floor=5)
    assert not state.replaying
    assert state.floor == 5


def test_catchup_skips_what_the_socket_itself_published_but_counts_it_for_the_order() -> None:
    state = Catchup()
    state.live(3, b"e3", "1.1", in_order=True)
    state.live(4, b"e4", "9.9", in_order=True)
    replay = state.finish(_retained(1, 2, sender="1.1"), "1.1")
    assert replay.payloads == [b"e4"]
    assert replay.floor == 4


def test_catchup_with_nothing_retained_or_held_ends_at_floor_zero() -> None:
    replay = Catchup().finish([], "1.1")
    assert replay == Replay([], replayed=0, dropped=0, floor=0)


def test_catchup_after_the_replay_drops_repeats_and_ends_at_the_first_new_event() -> None:
    state = Catchup()
    state.finish(_retained(1, 2, 3), "1.1")
    assert state.live(2, b"e2", None, in_order=True) is Step.DROP
    assert state.live(3, b"e3", None, in_order=True) is Step.DROP
    assert state.live(4, b"e4", None, in_order=True) is Step.SEND_DONE


def test_catchup_keeps_its_floor_where_numbers_may_come_out_of_order() -> None:
    state = Catchup()
    state.finish(_retained(1, 2, 3), "1.1")
    assert state.live(5, b"e5", None, in_order=False) is Step.SEND
    assert state.live(3, b"e3", None, in_order=False) is Step.DROP  # a late repeat


def test_fitting_keeps_the_newest_events_within_half_the_write_bound() -> None:
    events = [Retained(seq, b"x" * 90, 0.0) for seq in range(1, 11)]
    each = 90 + FRAME_OVERHEAD
    assert fitting(events, 2 * each * 10) == events
    kept = fitting(events, 2 * each * 3)
    assert [e.seq for e in kept] == [8, 9, 10]
    assert fitting(events, each) == []
