"""Property-based fuzzing of the RFC 6455 frame parser (issue 11).

The only allowed outcomes of ``FrameParser.feed`` are messages and ``FrameError``s;
how the bytes are split between reads never changes what comes out.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pusherd.protocol.frames import FrameError, FrameParser, Message, Opcode
from tests.fuzz_profiles import share

__all__: list[str] = []

pytestmark = pytest.mark.fuzz

MAX_SIZE = 4096
_CODES = {1002, 1009}


def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes = b"\x00\x00\x00\x00",
    rsv: int = 0,
    masked: bool = True,
    length_form: int = 0,
) -> bytes:
    """Encode a client frame; ``length_form`` 1/2 forces the 16/64-bit length fields."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    bit = 0x80 if masked else 0
    if length < 126 and length_form == 0:
        header = bytes((first, bit | length))
    elif length < 65536 and length_form < 2:
        header = struct.pack("!BBH", first, bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, bit | 127, length)
    if not masked:
        return header + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


@dataclass
class Outcome:
    messages: list[Message]
    error: int | None


def feed_in_chunks(data: bytes, cuts: list[int], max_size: int = MAX_SIZE) -> Outcome:
    parser = FrameParser(max_size)
    messages: list[Message] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        try:
            messages.extend(parser.feed(data[start:end]))
        except FrameError as exc:
            assert exc.code in _CODES, exc.code
            assert exc.reason
            return Outcome(messages, exc.code)
    return Outcome(messages, None)


def agree(one: Outcome, other: Outcome) -> None:
    """Two splits of the same bytes: same error, and one message list extends the other.

    (A read that ends in an error loses the messages it held: the socket closes anyway.)
    """
    assert one.error == other.error
    shorter, longer = sorted((one.messages, other.messages), key=len)
    assert longer[: len(shorter)] == shorter
    if one.error is None:
        assert one.messages == other.messages


# random and mutated bytes ------------------------------------------------------------
cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)


@given(st.binary(max_size=600), cuts)
@example(b"\x81\xff" + b"\x7f" + b"\xff" * 7, [])  # 2**63-1 declared: refused at once
@example(b"\x89\xfe\x00\x7e" + b"\x00" * 130, [])  # control frame over 125 bytes
@example(b"\x00\x80\x00\x00\x00\x00", [])  # continuation with nothing open
def test_frame_parser_random_bytes_give_messages_or_frame_errors(
    data: bytes, cuts: list[int]
) -> None:
    agree(feed_in_chunks(data, cuts), feed_in_chunks(data, []))


frame_specs = st.tuples(
    st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x7, 0x8, 0x9, 0xA, 0xB, 0xF]),
    st.binary(max_size=300),
    st.booleans(),  # fin
    st.binary(min_size=4, max_size=4),  # mask
    st.sampled_from([0, 0, 0, 0, 1, 2, 4, 7]),  # rsv bits
    st.sampled_from([True, True, True, False]),  # masked
    st.integers(min_value=0, max_value=2),  # length form
)


def _encode_spec(spec: tuple[int, bytes, bool, bytes, int, bool, int]) -> bytes:
    opcode, payload, fin, mask, rsv, masked, form = spec
    return client_frame(
        opcode, payload, fin=fin, mask=mask, rsv=rsv, masked=masked, length_form=form
    )


@given(st.lists(frame_specs, max_size=12), cuts)
def test_frame_parser_random_frames_split_anywhere_agree(
    specs: list[tuple[int, bytes, bool, bytes, int, bool, int]], cuts: list[int]
) -> None:
    data = b"".join(_encode_spec(s) for s in specs)
    agree(feed_in_chunks(data, cuts), feed_in_chunks(data, []))
    agree(feed_in_chunks(data, list(range(len(data)))), feed_in_chunks(data, []))


# a model: valid streams come out exactly as sent ------------------------------------------
@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[Message]]:
    """Messages (text/binary, fragmented or not, control frames between fragments)."""
    wire = []
    expected = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        mask = draw(st.binary(min_size=4, max_size=4))
        if draw(st.booleans()):
            opcode = draw(st.sampled_from([Opcode.PING, Opcode.PONG, Opcode.CLOSE]))
            payload = draw(st.binary(max_size=125))
            wire.append(client_frame(opcode, payload, mask=mask))
            expected.append(Message(opcode, payload))
            continue
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
        parts = draw(st.lists(st.binary(max_size=700), min_size=1, max_size=5))
        if sum(map(len, parts)) > MAX_SIZE:
            parts = [b"x"]
        controls_between = []
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            form = draw(st.integers(min_value=0, max_value=2))
            op = opcode if index == 0 else Opcode.CONTINUATION
            wire.append(client_frame(op, part, fin=last, mask=mask, length_form=form))
            if not last and draw(st.integers(min_value=0, max_value=3)) == 0:
                ping = draw(st.binary(max_size=20))
                wire.append(client_frame(Opcode.PING, ping, mask=mask))
                controls_between.append(Message(Opcode.PING, ping))
        expected.extend(controls_between)
        expected.append(Message(opcode, b"".join(parts)))
    return b"".join(wire), expected


@given(valid_streams(), cuts)
def test_frame_parser_valid_streams_come_out_as_sent(
    stream: tuple[bytes, list[Message]], cuts: list[int]
) -> None:
    data, expected = stream
    assert feed_in_chunks(data, cuts) == Outcome(expected, None)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_streams())[0])
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete" and data:
            del data[position : position + draw(st.integers(min_value=1, max_value=16))]
        elif action == "truncate":
            del data[position:]
    return bytes(data)


@share(2.0)
@given(mutated_streams(), cuts)
def test_frame_parser_mutated_streams_give_messages_or_frame_errors(
    data: bytes, cuts: list[int]
) -> None:
    agree(feed_in_chunks(data, cuts), feed_in_chunks(data, []))


@given(st.integers(min_value=MAX_SIZE + 1, max_value=(1 << 63) - 1), cuts)
def test_frame_parser_refuses_oversized_declared_length_before_the_payload(
    length: int, cuts: list[int]
) -> None:
    header = struct.pack("!BBQ", 0x81, 0xFF, length) + b"\x00" * 4
    assert feed_in_chunks(header, cuts).error == 1009
