from __future__ import annotations

import os

from pusherd.protocol.ids import SocketIds


def test_socket_ids_are_two_random_unsigned_32_bit_numbers_and_never_repeat() -> None:
    ids = SocketIds(os.urandom)
    made = [ids.next() for _ in range(600)]  # more than two refills of 256
    assert len(set(made)) == 600
    for socket_id in made:
        high, low = socket_id.split(".")
        assert high.isdigit() and low.isdigit()
        assert int(high) < 1 << 32 and int(low) < 1 << 32
    assert len({socket_id.split(".")[0] for socket_id in made}) > 500


def test_socket_ids_come_from_the_random_source_given() -> None:
    ids = SocketIds(lambda n: bytes(range(8)) * (n // 8))
    assert ids.next() == f"{0x00010203}.{0x04050607}"
