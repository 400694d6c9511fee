"""Hypothesis strategies for hostile JSON: every shape, deep nesting, huge values, text.

Values deeper than a few levels are built as *text*, never as Python objects, so the
tests themselves never hit orjson's encoder limit or Python's recursion limit.
"""

from __future__ import annotations

import orjson
from hypothesis import strategies as st

__all__ = ["json_texts", "json_values", "mutated", "nested_text"]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "client-", "pusher:", "private-a", "presence-a", "#server-to-user-1"])
)

json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def nested_text(draw: st.DrawFn) -> str:
    """A container nested 1..2000 levels (around the 64, 255 and 1024 limits)."""
    depth = draw(
        st.sampled_from([63, 64, 65, 254, 255, 256, 1023, 1024, 1025, 2000])
        | st.integers(min_value=1, max_value=300)
    )
    leaf = orjson.dumps(draw(_scalars)).decode()
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{}, {"k":', "}]")]))
    return opener * depth + leaf + closer * depth


@st.composite
def _huge_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["string", "array", "object"]))
    size = draw(st.integers(min_value=200, max_value=20_000))
    if kind == "string":
        return orjson.dumps("x" * size).decode()
    if kind == "array":
        return "[" + ",".join(["1"] * size) + "]"
    return "{" + ",".join(f'"k{i}":{i}' for i in range(size)) + "}"


json_texts = (
    json_values.map(lambda v: orjson.dumps(v).decode())
    | nested_text()
    | _huge_text()
    | json_values.map(
        lambda v: orjson.dumps(orjson.dumps(v).decode()).decode()
    )  # a JSON string of JSON
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as bytes with a few random byte edits (flip, insert, delete, cut)."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and data:
            del data[position : position + draw(st.integers(min_value=1, max_value=8))]
        elif action == "cut":
            del data[position:]
    return bytes(data)
