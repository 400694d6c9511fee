"""WebSocket framing (RFC 6455): handshake key, server encoders and the client-frame parser."""

from __future__ import annotations

import struct

import pytest

from pusherd.protocol.frames import (
    CloseStatus,
    FrameError,
    FrameParser,
    Message,
    Opcode,
    accept_key,
    close_frame,
    encode_frame,
    ping_frame,
    pong_frame,
    text_frame,
)

__all__: list[str] = []

MASK = b"\x37\xfa\x21\x3d"


def client_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bytes | None = MASK,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """Encode a client frame (masked unless ``mask`` is None); ``length`` fakes the header."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if mask is None:
        return header + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def decode_server_frame(frame: bytes) -> tuple[int, int, bytes]:
    """Return (first byte, declared length, payload) of an unmasked server frame."""
    second = frame[1]
    assert not second & 0x80, "server frames are never masked"
    length = second & 0x7F
    offset = 2
    if length == 126:
        (length,) = struct.unpack_from("!H", frame, 2)
        offset = 4
    elif length == 127:
        (length,) = struct.unpack_from("!Q", frame, 2)
        offset = 10
    return frame[0], length, frame[offset:]


# handshake / encoders --------------------------------------------------------------------
def test_accept_key_rfc6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("length", "header_size"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
def test_encode_frame_lengths(length: int, header_size: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    frame = encode_frame(Opcode.TEXT, payload)
    assert len(frame) == header_size + length
    first, declared, body = decode_server_frame(frame)
    assert first == 0x81
    assert declared == length
    assert body == payload


def test_encode_frame_exact_headers() -> None:
    assert encode_frame(Opcode.TEXT, b"") == b"\x81\x00"
    assert encode_frame(Opcode.TEXT, b"x" * 125)[:2] == b"\x81\x7d"
    assert encode_frame(Opcode.TEXT, b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert encode_frame(Opcode.TEXT, b"x" * 65535)[:4] == b"\x81\x7e\xff\xff"
    assert encode_frame(Opcode.TEXT, b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


def test_encode_frame_not_final() -> None:
    assert encode_frame(Opcode.TEXT, b"ab", fin=False) == b"\x01\x02ab"


def test_text_ping_pong_frames() -> None:
    assert text_frame(b'{"a":1}') == b"\x81\x07" + b'{"a":1}'
    assert ping_frame() == b"\x89\x00"
    assert ping_frame(b"hi") == b"\x89\x02hi"
    assert pong_frame(b"hi") == b"\x8a\x02hi"


def test_close_frame_code_and_reason() -> None:
    frame = close_frame(4001, "App not found")
    first, length, body = decode_server_frame(frame)
    assert first == 0x88
    assert struct.unpack("!H", body[:2])[0] == 4001
    assert body[2:] == b"App not found"
    assert length == len(body)


def test_close_frame_long_reason_fits_control_limit() -> None:
    _, length, body = decode_server_frame(close_frame(1000, "x" * 500))
    assert length <= 125
    assert struct.unpack("!H", body[:2])[0] == 1000


# parser ----------------------------------------------------------------------------------
def test_parser_masked_text_frame() -> None:
    parser = FrameParser(max_size=1024)
    assert parser.feed(client_frame(Opcode.TEXT, b"Hello")) == [Message(Opcode.TEXT, b"Hello")]


def test_parser_rfc6455_masked_hello_example() -> None:
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert FrameParser(max_size=1024).feed(frame) == [Message(Opcode.TEXT, b"Hello")]


def test_parser_empty_and_binary_payloads() -> None:
    parser = FrameParser(max_size=1024)
    data = client_frame(Opcode.TEXT, b"") + client_frame(Opcode.BINARY, b"\x00\x01")
    assert parser.feed(data) == [Message(Opcode.TEXT, b""), Message(Opcode.BINARY, b"\x00\x01")]


@pytest.mark.parametrize("length", [125, 126, 65535, 65536])
def test_parser_extended_lengths(length: int) -> None:
    payload = bytes(i % 256 for i in range(length))
    parser = FrameParser(max_size=1 << 20)
    assert parser.feed(client_frame(Opcode.BINARY, payload)) == [Message(Opcode.BINARY, payload)]


def test_parser_split_byte_by_byte() -> None:
    parser = FrameParser(max_size=1 << 20)
    payload = b'{"event":"pusher:ping","data":{}}' * 5
    frame = client_frame(Opcode.TEXT, payload)
    messages: list[Message] = []
    for index in range(len(frame)):
        got = parser.feed(frame[index : index + 1])
        if index < len(frame) - 1:
            assert got == []
        messages.extend(got)
    assert messages == [Message(Opcode.TEXT, payload)]


def test_parser_split_extended_header_byte_by_byte() -> None:
    parser = FrameParser(max_size=1 << 20)
    payload = b"y" * 70000
    frame = client_frame(Opcode.TEXT, payload)
    messages: list[Message] = []
    for index in range(20):
        messages.extend(parser.feed(frame[index : index + 1]))
    messages.extend(parser.feed(frame[20:]))
    assert messages == [Message(Opcode.TEXT, payload)]


def test_parser_several_frames_in_one_feed() -> None:
    parser = FrameParser(max_size=1024)
    data = (
        client_frame(Opcode.TEXT, b"one")
        + client_frame(Opcode.PING, b"p")
        + client_frame(Opcode.TEXT, b"two")
        + client_frame(Opcode.PONG, b"")
        + client_frame(Opcode.CLOSE, struct.pack("!H", 1000))
    )
    assert parser.feed(data) == [
        Message(Opcode.TEXT, b"one"),
        Message(Opcode.PING, b"p"),
        Message(Opcode.TEXT, b"two"),
        Message(Opcode.PONG, b""),
        Message(Opcode.CLOSE, struct.pack("!H", 1000)),
    ]


def test_parser_keeps_partial_trailing_frame() -> None:
    parser = FrameParser(max_size=1024)
    second = client_frame(Opcode.TEXT, b"second")
    assert parser.feed(client_frame(Opcode.TEXT, b"first") + second[:3]) == [
        Message(Opcode.TEXT, b"first")
    ]
    assert parser.feed(second[3:]) == [Message(Opcode.TEXT, b"second")]


def test_parser_fragmented_message_with_interleaved_ping() -> None:
    parser = FrameParser(max_size=1024)
    data = (
        client_frame(Opcode.TEXT, b"Hel", fin=False)
        + client_frame(Opcode.PING, b"ping")
        + client_frame(Opcode.CONTINUATION, b"lo, ", fin=False)
        + client_frame(Opcode.CONTINUATION, b"world")
    )
    assert parser.feed(data) == [
        Message(Opcode.PING, b"ping"),
        Message(Opcode.TEXT, b"Hello, world"),
    ]
    # the parser is ready for a fresh message afterwards
    assert parser.feed(client_frame(Opcode.TEXT, b"next")) == [Message(Opcode.TEXT, b"next")]


def test_parser_fragmented_binary_across_feeds() -> None:
    parser = FrameParser(max_size=1024)
    assert parser.feed(client_frame(Opcode.BINARY, b"\x01", fin=False)) == []
    assert parser.feed(client_frame(Opcode.CONTINUATION, b"\x02", fin=False)) == []
    assert parser.feed(client_frame(Opcode.CONTINUATION, b"\x03")) == [
        Message(Opcode.BINARY, b"\x01\x02\x03")
    ]


def _error(data: bytes, max_size: int = 1024, before: bytes = b"") -> FrameError:
    parser = FrameParser(max_size=max_size)
    if before:
        parser.feed(before)
    with pytest.raises(FrameError) as info:
        parser.feed(data)
    return info.value


def test_parser_unmasked_frame_is_protocol_error() -> None:
    assert _error(client_frame(Opcode.TEXT, b"hi", mask=None)).code == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
def test_parser_reserved_bits_are_protocol_error(rsv: int) -> None:
    assert _error(client_frame(Opcode.TEXT, b"hi", rsv=rsv)).code == CloseStatus.PROTOCOL_ERROR


def test_parser_oversized_message_is_too_big() -> None:
    error = _error(client_frame(Opcode.TEXT, b"x" * 101), max_size=100)
    assert error.code == 1009


def test_parser_oversized_header_rejected_before_payload_arrives() -> None:
    frame = client_frame(Opcode.TEXT, b"", length=1 << 40)
    assert _error(frame[:10], max_size=1 << 20).code == 1009


def test_parser_max_size_is_inclusive() -> None:
    assert FrameParser(max_size=100).feed(client_frame(Opcode.TEXT, b"x" * 100)) == [
        Message(Opcode.TEXT, b"x" * 100)
    ]


def test_parser_oversized_fragmented_message_is_too_big() -> None:
    first = client_frame(Opcode.TEXT, b"x" * 60, fin=False)
    error = _error(client_frame(Opcode.CONTINUATION, b"y" * 60), max_size=100, before=first)
    assert error.code == 1009


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_parser_control_frame_over_125_is_protocol_error(opcode: Opcode) -> None:
    assert _error(client_frame(opcode, b"x" * 126), max_size=1 << 20).code == 1002


def test_parser_fragmented_control_frame_is_protocol_error() -> None:
    assert _error(client_frame(Opcode.PING, b"x", fin=False)).code == 1002


def test_parser_continuation_without_start_is_protocol_error() -> None:
    assert _error(client_frame(Opcode.CONTINUATION, b"x")).code == 1002


def test_parser_new_data_frame_during_fragmentation_is_protocol_error() -> None:
    first = client_frame(Opcode.TEXT, b"a", fin=False)
    assert _error(client_frame(Opcode.TEXT, b"b"), before=first).code == 1002
    assert _error(client_frame(Opcode.BINARY, b"b"), before=first).code == 1002


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF])
def test_parser_unknown_opcode_is_protocol_error(opcode: int) -> None:
    assert _error(client_frame(opcode, b"x")).code == 1002


def test_frame_error_carries_reason() -> None:
    error = _error(client_frame(Opcode.TEXT, b"hi", mask=None))
    assert error.reason
    assert str(error) == error.reason


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.CLOSE])
def test_a_whole_short_frame_in_one_read_parses_as_it_does_split_in_two(opcode: Opcode) -> None:
    for length in range(126):
        payload = bytes((i * 7 + length) & 0xFF for i in range(length))
        frame = client_frame(opcode, payload, mask=bytes((length, 0x5A, 0xFF, 1)))
        split = FrameParser(max_size=1000)
        assert split.feed(frame[:1]) == []
        expected = split.feed(frame[1:])
        assert FrameParser(max_size=1000).feed(frame) == expected == [Message(opcode, payload)]


def test_a_whole_short_frame_over_max_size_is_too_big_in_one_read() -> None:
    assert _error(client_frame(Opcode.TEXT, b"x" * 20), max_size=10).code == 1009


def test_parser_error_keeps_the_messages_before_the_bad_frame() -> None:
    parser = FrameParser(1024)
    data = client_frame(Opcode.TEXT, b"one") + client_frame(Opcode.TEXT, b"two")
    with pytest.raises(FrameError) as info:
        parser.feed(data + client_frame(Opcode.TEXT, b"x" * 2000))
    assert [m.payload for m in info.value.messages] == [b"one", b"two"]


def test_discard_until_close_skips_the_rest_of_an_oversized_frame() -> None:
    parser = FrameParser(1024)
    big = client_frame(Opcode.TEXT, b"x" * 100_000)
    with pytest.raises(FrameError):
        parser.feed(big[:3000])
    rest = big[3000:] + client_frame(Opcode.CLOSE, struct.pack("!H", 1000))
    chunks = [rest[i : i + 4096] for i in range(0, len(rest), 4096)]
    seen = [parser.discard_until_close(chunk) for chunk in chunks]
    assert seen[-1] is True and not any(seen[:-1])


def test_discard_until_close_finds_a_close_split_across_reads() -> None:
    parser = FrameParser(1024)
    text = client_frame(Opcode.TEXT, b"a" * 300)
    data = text + client_frame(Opcode.CLOSE, b"\x03\xe8")
    # Byte by byte up to the close frame's first header byte: not yet.
    assert not any(parser.discard_until_close(data[i : i + 1]) for i in range(len(text) + 1))
    assert parser.discard_until_close(data[len(text) + 1 :])


def test_discard_until_close_false_while_no_close_arrived() -> None:
    parser = FrameParser(1024)
    frames = client_frame(Opcode.TEXT, b"hi") + client_frame(Opcode.PING, b"")
    assert parser.discard_until_close(frames) is False


def test_close_reply_echoes_the_code_or_answers_1000() -> None:
    from pusherd.protocol.frames import close_reply

    assert close_reply(struct.pack("!H", 4000) + b"bye") == (4000, close_frame(4000))
    assert close_reply(b"") == (1000, close_frame(1000))
    assert close_reply(struct.pack("!H", 999)) == (999, close_frame(1000))
    assert close_reply(struct.pack("!H", 5000)) == (5000, close_frame(1000))
