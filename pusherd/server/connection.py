"""One established WebSocket: reads its frames and carries out its ``Session``'s actions.

``Upgrade`` (the socket's asyncio protocol) builds a ``Connection`` once the upgrade is
admitted, whole: app, socket id, session and frame parser are known from the start, and
``Upgrade`` hands every later read to it. Output goes through ``Writer`` (one writer per
socket). A task exists only while the session waits on the broker (subscribe, sign-in,
client event); messages that arrive meanwhile wait in a bounded inbox, and reading pauses
when it is full.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pusherd.apps.base import App
from pusherd.errors import (
    BrokerError,
    CloseCode,
    ConnectionError_,
    PusherError,
    SubscriptionError,
)
from pusherd.metrics import Metrics
from pusherd.observer import Observer
from pusherd.protocol.actions import Action, Send, Unsubscribe
from pusherd.protocol.frames import (
    CloseStatus,
    FrameError,
    FrameParser,
    Message,
    Opcode,
    close_frame,
    close_reply,
    pong_frame,
    text_frame,
)
from pusherd.protocol.messages import encode_error, error_messages, parse_client_message
from pusherd.protocol.session import Session
from pusherd.server.eager import start_eagerly
from pusherd.server.linger import Lingering
from pusherd.server.writer import Writer

if TYPE_CHECKING:
    from pusherd.server.membership import Membership

__all__ = ["MAX_INBOX", "Connection", "ConnectionServices"]

logger = logging.getLogger("pusherd.connection")

MAX_INBOX = 100
_BINARY_ERROR = text_frame(
    encode_error("Binary frames are not supported: send JSON text frames", None)
)

Apply = Callable[["Connection", Any], Awaitable[None]]


class ConnectionServices:
    """What every ``Connection`` of a node uses, built once by ``server.app``."""

    __slots__ = (
        "apply",
        "clock",
        "debug",
        "disconnected",
        "drop_local",
        "eager",
        "max_buffer",
        "max_message_size",
        "metrics",
        "observer",
    )

    def __init__(
        self,
        *,
        membership: Membership,
        disconnected: Callable[[Connection], None],
        metrics: Metrics,
        observer: Observer,
        clock: Callable[[], float],
        eager: bool,
        debug: bool,
        max_message_size: int,
        max_buffer: int,
    ) -> None:
        self.apply: dict[type[Action], Apply] = membership.apply
        self.drop_local = membership.drop_local
        self.disconnected = disconnected
        self.metrics = metrics
        self.observer = observer
        self.clock = clock
        self.eager = eager
        self.debug = debug
        self.max_message_size = max_message_size
        self.max_buffer = max_buffer


class Connection(Writer):
    """One established client socket, until ``connection_lost``."""

    __slots__ = (
        "app",
        "inbox",
        "internal",
        "last_seen",
        "lingering",
        "opened_at",
        "parser",
        "paused",
        "pinged_at",
        "services",
        "session",
        "task",
        "transport",
    )

    def __init__(
        self,
        services: ConnectionServices,
        transport: asyncio.Transport,
        app: App,
        socket_id: str,
        opened_at: float,
        first: bytes,
    ) -> None:
        """Build the socket, corked behind ``first`` (the 101 response) until ``uncork``."""
        # Writer's fields, set here rather than through super().__init__: one call fewer
        # per connect.
        self.max_buffer = services.max_buffer
        self.closing = False
        self.closing_since = 0.0
        self.close_code = 0
        self.services = services
        self.transport = transport
        self.app = app
        self.socket_id = socket_id
        self.session = Session(app, socket_id, opened_at)
        self.parser = FrameParser(services.max_message_size)
        self.out = [first]
        self.opened_at = opened_at
        self.last_seen = opened_at
        self.pinged_at = 0.0
        self.inbox: deque[bytes] | None = None
        self.task: asyncio.Future[None] | None = None
        self.internal: list[str] | None = None
        self.paused = False
        self.lingering: Lingering | None = None

    def __repr__(self) -> str:
        return f"Connection(socket_id={self.socket_id!r})"

    # input -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closing:
            if self.lingering is not None:
                self.lingering.feed(data)
            return
        self.last_seen = self.services.clock()
        self.pinged_at = 0.0
        try:
            messages = self.parser.feed(data)
        except FrameError as exc:
            self._on_messages(exc.messages)
            if not self.closing:
                if exc.code == CloseStatus.TOO_BIG:
                    self.send(encode_error(exc.reason, None))
                self.close(exc.code, exc.reason, error_frame=False)
            return
        if len(messages) != 1:
            self._on_messages(messages)
        elif messages[0].opcode is Opcode.TEXT:  # nearly every read: one whole message
            self._on_text(messages[0].payload)
        else:
            self._on_control(messages[0])

    def _on_messages(self, messages: list[Message]) -> None:
        for index, message in enumerate(messages):
            if self.closing:
                if self.lingering is not None and any(
                    m.opcode is Opcode.CLOSE for m in messages[index:]
                ):
                    self.lingering.end()
                return
            if message.opcode is Opcode.TEXT:
                self._on_text(message.payload)
            else:
                self._on_control(message)

    def connection_lost(self) -> None:
        self.closing = True
        self.out = None
        if self.lingering is not None:
            self.lingering.cancel()
        self.services.disconnected(self)

    def shutdown(self) -> None:
        """Graceful shutdown: tell the client to reconnect elsewhere (4200)."""
        self.close(CloseCode.RECONNECT, "Server is shutting down, reconnect")

    def _on_control(self, message: Message) -> None:
        opcode = message.opcode
        if opcode is Opcode.PING:
            self.write_now(pong_frame(message.payload))
        elif opcode is Opcode.CLOSE:
            self.close_code, reply = close_reply(message.payload)
            self.closing = True
            self.write_now(reply)
            self.transport.close()
        elif opcode is Opcode.BINARY:
            self.services.metrics.error_sent(None)
            self.send_frame(_BINARY_ERROR)

    def _on_text(self, payload: bytes) -> None:
        services = self.services
        if services.debug:
            logger.debug(
                "frame in %s: %s", self.socket_id, payload[:2000].decode("utf-8", "replace")
            )
        services.metrics.message_received(self.app.id, len(payload))
        if self.task is not None:
            inbox = self.inbox
            if inbox is None:
                inbox = self.inbox = deque()
            inbox.append(payload)
            if len(inbox) >= MAX_INBOX and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            return
        actions = self._handle(payload)
        if actions:
            self._execute(actions)

    # actions -----------------------------------------------------------------------
    def _handle(self, payload: bytes) -> list[Action] | None:
        try:
            message = parse_client_message(payload)
            return self.session.handle(message, self.services.clock())
        except PusherError as exc:
            self.fail(exc)
            return None
        except Exception:  # a bug must cost this message, never the socket (issue 11)
            logger.exception("internal error while handling a client message")
            self.fail(PusherError("Internal server error"))
            return None

    def _execute(self, actions: list[Action]) -> None:
        pending: list[Action] = []
        for action in actions:
            if type(action) is Send:
                self.send(action.payload)
                continue
            if type(action) is Unsubscribe:
                # Stop delivery now, not one loop turn later when the task runs.
                self.services.drop_local(self, action.channel)
            pending.append(action)
        if pending:
            # At once with a broker that never waits, else as a task.
            run = self._run(pending)
            self.task = (
                start_eagerly(run)
                if self.services.eager
                else asyncio.get_running_loop().create_task(run)
            )

    async def _run(self, actions: list[Action] | None) -> None:
        """Carry out ``actions``, then the messages that arrived meanwhile, in order."""
        apply = self.services.apply
        try:
            while actions:
                for action in actions:
                    if self.closing:
                        return
                    if type(action) is Send:
                        self.send(action.payload)
                        continue
                    try:
                        await apply[type(action)](self, action)
                    except PusherError as exc:
                        self.fail(exc)
                    except BrokerError as exc:
                        logger.warning(
                            "broker unavailable while handling %s: %s", type(action).__name__, exc
                        )
                        self.fail(self.session.unavailable(action))
                    except Exception:  # a bug must cost this message, never the socket
                        logger.exception("internal error while handling %s", type(action).__name__)
                        self.fail(PusherError("Internal server error"))
                actions = None
                while not actions and self.inbox and not self.closing:
                    actions = self._handle(self.inbox.popleft())
        finally:
            self.task = None
            if self.paused and not self.closing:
                self.paused = False
                self.transport.resume_reading()

    # output ------------------------------------------------------------------------
    def fail(self, exc: PusherError) -> None:
        """Tell the client about ``exc``: fatal errors close the socket with their code."""
        if isinstance(exc, ConnectionError_):
            self.close(exc.code, exc.message)
            return
        if exc.code == CloseCode.CLIENT_EVENT_RATE_LIMIT:
            self.services.metrics.rate_limited(self.app.id, "client_events")
        elif isinstance(exc, SubscriptionError) and exc.channel:
            self.services.observer.refused(
                self.app.id, self.socket_id, exc.channel, exc.message, exc.status
            )
        self.services.metrics.error_sent(exc.code)
        for payload in error_messages(exc):
            self.send(payload)

    def send(self, payload: bytes) -> None:
        """Send one JSON text message, after any frames already queued for this socket."""
        if self.services.debug:
            logger.debug(
                "frame out %s: %s", self.socket_id, payload[:2000].decode("utf-8", "replace")
            )
        length = len(payload)
        # text_frame, inlined for the short messages nearly every send is
        self.send_frame(bytes((0x81, length)) + payload if length < 126 else text_frame(payload))

    def close(self, code: int, message: str, error_frame: bool = True) -> None:
        """Send ``pusher:error`` (for 4xxx codes) and a close frame, then linger-close."""
        if self.closing:
            return
        if code != CloseStatus.NORMAL:
            self.services.metrics.error_sent(code)
        if error_frame and code >= 4000:
            self.write_now(text_frame(encode_error(message, code)))
        self.closing = True
        self.closing_since = self.services.clock()
        self.close_code = code
        self.write_now(close_frame(code, message))
        if self.transport.is_closing():
            return
        if self.paused:  # a full inbox stopped reading; the client's close must get in
            self.paused = False
            self.transport.resume_reading()
        self.lingering = Lingering(self.transport, self.parser)

    def overflow(self) -> None:
        """Cut off a slow consumer: it stops reading, so stop writing to it (4100)."""
        if self.closing:
            return
        self.services.observer.slow_consumer(
            self.app.id, self.socket_id, self.transport.get_write_buffer_size()
        )
        self.close(CloseCode.OVER_CAPACITY, "Slow consumer: too many unsent bytes")
        # The close frame waits behind the backlog; the sweep aborts it if it never drains.
