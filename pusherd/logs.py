"""Logging setup: readable text by default, one JSON object per line with ``json``.

pusherd logs one line per connection open and close and per REST call at ``info``,
which at thousands of connections a second is a hot path of its own. So records skip
what nobody reads here (caller frame lookup, thread and process names), and the
timestamp text is rebuilt once per second instead of once per line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque

import orjson

__all__ = [
    "DEFER_BATCH",
    "BufferedHandler",
    "InfoLine",
    "JsonFormatter",
    "TextFormatter",
    "flush_logs",
    "setup_logging",
]

FLUSH_INTERVAL = 0.5
DEFER_BATCH = 256


class _Clock:
    """``YYYY-MM-DDTHH:MM:SS`` for a unix time, cached for the current second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""
        self._millisecond = -1
        self._stamp = ""

    def text(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._text

    def stamp(self, now: float) -> str:
        """``text`` with milliseconds and ``Z``, cached for the current millisecond."""
        millisecond = int(now * 1000)
        if millisecond != self._millisecond:
            self._millisecond = millisecond
            self._stamp = f"{self.text(now)}.{int((now % 1) * 1000):03d}Z"
        return self._stamp


class TextFormatter(logging.Formatter):
    """``2026-11-23T03:21:27.489Z INFO pusherd.node: message``."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self._clock.text(record.created)}.{int(record.msecs):03d}Z "
            f"{record.levelname} {record.name}: {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def line(self, now: float, level: str, name: str, message: str) -> str:
        """The same text as ``format`` for a record without arguments or exception."""
        return f"{self._clock.stamp(now)} {level} {name}: {message}"


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON (for log shippers)."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": f"{self._clock.text(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()

    def line(self, now: float, level: str, name: str, message: str) -> str:
        """The same JSON as ``format`` for a record without arguments or exception."""
        entry = {
            "time": self._clock.stamp(now),
            "level": level.lower(),
            "logger": name,
            "message": message,
        }
        return orjson.dumps(entry).decode()


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write lines through a 64 KiB buffer; flush on warnings and twice a second.

    A ``write`` per log line costs more than the connection it reports when stderr is
    a file; ``flush_logs`` (called by the node every second, at shutdown and at exit)
    bounds the delay of quiet periods.

    ``InfoLine``'s lines are not even formatted one by one: ``defer`` keeps the time,
    logger name and message, and they are formatted together, in order, before any
    other record is written, on ``flush`` and every ``DEFER_BATCH`` lines. Formatting
    256 lines in a row costs a fraction of formatting each between two connections.
    """

    def __init__(self) -> None:
        stream = open(  # noqa: SIM115 - lives as long as the process
            sys.stderr.fileno(),
            "w",
            buffering=1 << 16,
            encoding="utf-8",
            errors="replace",
            closefd=False,
        )
        super().__init__(stream)
        self._flushed = time.monotonic()
        # (unix time, logger name, message); a deque: appends and pops never lose a
        # line to a concurrent drain.
        self._deferred: deque[tuple[float, str, str]] = deque()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._deferred:
                self._drain()
            self.stream.write(self.format(record) + "\n")
            now = time.monotonic()
            if record.levelno >= logging.WARNING or now - self._flushed > FLUSH_INTERVAL:
                self._flushed = now
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def defer(self, created: float, name: str, message: str) -> None:
        """Queue one info line of logger ``name`` (see ``InfoLine``)."""
        deferred = self._deferred
        deferred.append((created, name, message))
        if len(deferred) >= DEFER_BATCH:
            self._drain()

    def flush(self) -> None:
        if self._deferred:
            self._drain()
        super().flush()

    def _drain(self) -> None:
        deferred = self._deferred
        formatter = self.formatter
        with self.lock:  # type: ignore[union-attr]
            try:
                write = self.stream.write
                while deferred:
                    created, name, message = deferred.popleft()
                    if isinstance(formatter, TextFormatter | JsonFormatter):
                        text = formatter.line(created, "INFO", name, message)
                    else:  # the formatter was replaced since: format a record
                        text = self.format(_record(created, name, message))
                    write(text + "\n")
                now = time.monotonic()
                if now - self._flushed > FLUSH_INTERVAL:
                    self._flushed = now
                    self.stream.flush()
            except (OSError, ValueError):  # stderr is gone: a log line never breaks a caller
                deferred.clear()


def _record(created: float, name: str, message: str) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, "", 0, message, None, None)
    record.created = created
    record.msecs = (created % 1) * 1000
    return record


class InfoLine:
    """``logger.info(message)`` for lines written per connection and per REST call.

    Through ``logging`` such a line costs a ``LogRecord``, handler dispatch and
    ``%``-formatting: more than a whole connect/subscribe/close cycle's own work.
    When the only handler is the one ``setup_logging`` installed, the line is
    formatted and buffered directly, byte for byte as ``logging`` would have written
    it; with any other setup (tests capturing logs, embedders' handlers) it goes
    through ``logging`` unchanged.
    """

    __slots__ = ("_logger", "_name", "_root")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger = logging.getLogger(name)
        self._root = logging.getLogger()

    @property
    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def __call__(self, message: str) -> None:
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        root = self._root
        handlers = root.handlers
        if len(handlers) == 1 and _plain_path(logger, root):
            handler = handlers[0]
            formatter = handler.formatter
            if (
                type(handler) is BufferedHandler
                and not handler.filters
                and handler.level <= logging.INFO
                and (type(formatter) is TextFormatter or type(formatter) is JsonFormatter)
            ):
                handler.defer(time.time(), self._name, message)
                return
        logger.info("%s", message)


def _plain_path(logger: logging.Logger, root: logging.Logger) -> bool:
    """True if records of ``logger`` reach only the root's handlers, unfiltered."""
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        if node.handlers or node.filters or not node.propagate:
            return False
        node = node.parent
    return True


def flush_logs() -> None:
    """Flush every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger and uvicorn's loggers the same way."""
    # Nothing here prints the caller's file/line, thread or process: don't compute them.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
