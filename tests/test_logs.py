"""``pusherd.logs``: the fast info-line path writes what ``logging`` would have written."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest

from pusherd.logs import DEFER_BATCH, BufferedHandler, InfoLine, JsonFormatter, TextFormatter

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO pusherd\.test: connection opened: app 1$"
)


@pytest.fixture
def installed() -> Iterator[tuple[BufferedHandler, io.StringIO]]:
    """Install a BufferedHandler writing to a StringIO as the root's only handler."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = BufferedHandler()
    stream = io.StringIO()
    handler.setStream(stream)
    handler.setFormatter(TextFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield handler, stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_info_line_writes_the_text_line_logging_would(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    InfoLine("pusherd.test")("connection opened: app 1")
    logging.getLogger("pusherd.test").info("connection opened: app %s", 1)
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(TEXT_LINE.match(line) for line in lines)


def test_info_line_writes_json_with_the_same_fields(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    handler.setFormatter(JsonFormatter())
    InfoLine("pusherd.test")("rest POST events -> 200 (0.1 ms)")
    logging.getLogger("pusherd.test").info("rest POST events -> 200 (0.1 ms)")
    handler.flush()
    fast, slow = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert fast.keys() == slow.keys() == {"time", "level", "logger", "message"}
    assert {k: v for k, v in fast.items() if k != "time"} == {
        k: v for k, v in slow.items() if k != "time"
    }


def test_info_line_is_silent_below_the_configured_level(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    logging.getLogger().setLevel(logging.WARNING)
    line = InfoLine("pusherd.test")
    assert not line.enabled
    line("connection opened: app 1")
    handler.flush()
    assert stream.getvalue() == ""


def test_info_line_goes_through_logging_when_other_handlers_listen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="pusherd.test"):
        InfoLine("pusherd.test")("connection closed: app 1 socket 1.2 code 1000")
    assert [r.getMessage() for r in caplog.records] == [
        "connection closed: app 1 socket 1.2 code 1000"
    ]


def test_info_line_respects_a_handler_on_a_parent_logger(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    parent = logging.getLogger("pusherd.parenttest")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    extra = Collect()
    parent.addHandler(extra)
    try:
        InfoLine("pusherd.parenttest.child")("hello")
    finally:
        parent.removeHandler(extra)
    handler.flush()
    assert seen == ["hello"]
    assert stream.getvalue().rstrip().endswith("INFO pusherd.parenttest.child: hello")


def test_the_line_stamp_is_the_second_text_with_milliseconds_for_each_millisecond() -> None:
    formatter = TextFormatter()
    at = 1_795_000_000.25
    assert formatter.line(at, "INFO", "x", "m") == "2026-11-18T11:06:40.250Z INFO x: m"
    assert formatter.line(at + 0.0004, "INFO", "x", "m") == "2026-11-18T11:06:40.250Z INFO x: m"
    assert formatter.line(at + 0.0011, "INFO", "x", "m") == "2026-11-18T11:06:40.251Z INFO x: m"
    assert formatter.line(at + 0.75, "INFO", "y", "n") == "2026-11-18T11:06:41.000Z INFO y: n"


def test_info_lines_are_written_in_order_before_a_later_record(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    line = InfoLine("pusherd.test")
    line("connection opened: app 1")
    logging.getLogger("pusherd.test").warning("broker unavailable")
    line("connection closed: app 1 socket 1.2 code 1000")
    handler.flush()
    messages = [text.split(": ", 1)[1] for text in stream.getvalue().splitlines()]
    assert messages == [
        "connection opened: app 1",
        "broker unavailable",
        "connection closed: app 1 socket 1.2 code 1000",
    ]


def test_deferred_info_lines_are_written_by_the_batch_without_a_flush(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    _, stream = installed
    line = InfoLine("pusherd.test")
    for index in range(DEFER_BATCH):
        line(f"connection opened: app {index}")
    written = stream.getvalue().splitlines()
    assert len(written) == DEFER_BATCH
    assert written[-1].endswith(f"connection opened: app {DEFER_BATCH - 1}")


def test_a_deferred_line_keeps_the_time_it_was_logged_at(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    handler.defer(1_795_000_000.25, "pusherd.test", "connection opened: app 1")
    handler.flush()
    assert (
        stream.getvalue()
        == "2026-11-18T11:06:40.250Z INFO pusherd.test: connection opened: app 1\n"
    )


def test_a_deferred_line_is_formatted_as_a_record_when_the_formatter_was_replaced(
    installed: tuple[BufferedHandler, io.StringIO],
) -> None:
    handler, stream = installed
    handler.defer(1_795_000_000.25, "pusherd.test", "connection opened: app 1")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.flush()
    assert stream.getvalue() == "INFO pusherd.test connection opened: app 1\n"
