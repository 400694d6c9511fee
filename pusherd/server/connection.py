"""One WebSocket: the asyncio protocol that carries out its ``Session``'s actions.

How the endpoint reaches the transport: uvicorn hands a WebSocket upgrade to the
class given as ``ws=`` together with the transport, replaying the request head into
``data_received``. ``Connection`` is that class (built by ``Node.ws_protocol``). It
owns the socket from the handshake on, so fan-out writes pre-built frames straight
to ``transport.write`` with no ASGI ``send()`` per message and no task per socket.
A task exists only while the session waits on the broker (subscribe, sign-in,
client event); messages that arrive meanwhile wait in a bounded inbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from pusherd.apps.base import App
from pusherd.errors import (
    BrokerError,
    CloseCode,
    ConnectionError_,
    PusherError,
    SubscriptionError,
)
from pusherd.protocol.actions import Action, Send, Unsubscribe
from pusherd.protocol.frames import (
    CloseStatus,
    FrameError,
    FrameParser,
    Message,
    Opcode,
    close_frame,
    pong_frame,
    text_frame,
)
from pusherd.protocol.messages import encode_error, parse_client_message
from pusherd.protocol.session import Session
from pusherd.server import linger
from pusherd.server.eager import start_eagerly
from pusherd.server.handshake import HandshakeError, accept_response, parse_request

if TYPE_CHECKING:
    from pusherd.server.front_door import FrontDoor
    from pusherd.server.node import Node

__all__ = ["Connection"]

logger = logging.getLogger("pusherd.connection")

MAX_INBOX = 100
_NORMAL_CLOSE = close_frame(CloseStatus.NORMAL)
_BINARY_ERROR = encode_error("Binary frames are not supported: send JSON text frames", None)


class Connection(asyncio.Protocol):
    """One client socket, from the upgrade request to ``connection_lost``."""

    __slots__ = (
        "_head",
        "app",
        "close_code",
        "closing",
        "closing_since",
        "discarded",
        "door",
        "inbox",
        "internal",
        "last_seen",
        "lingering",
        "node",
        "opened_at",
        "out",
        "parser",
        "paused",
        "pinged_at",
        "server_state",
        "session",
        "socket_id",
        "task",
        "transport",
    )

    def __init__(
        self,
        node: Node,
        server_state: Any = None,
        door: tuple[FrontDoor, dict[str, Any]] | None = None,
    ) -> None:
        self.node = node
        self.server_state = server_state
        # Set when uvicorn built this as the first protocol of a new socket: the first
        # read decides whether it stays (an upgrade) or goes to HTTP (see front_door).
        self.door = door
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.session: Session | None = None
        self.parser: FrameParser | None = None
        self.app: App | None = None
        self.socket_id = ""
        self.out: list[bytes] | None = None
        self.closing = False
        self.closing_since = 0.0
        self.close_code = 0
        self.last_seen = 0.0
        self.opened_at = 0.0
        self.pinged_at = 0.0
        self.inbox: deque[bytes] | None = None
        self.task: asyncio.Future[None] | None = None
        self.internal: list[str] | None = None
        self.paused = False
        self.lingering: asyncio.TimerHandle | None = None
        self.discarded = 0
        self._head = b""

    def __repr__(self) -> str:
        return f"Connection(socket_id={self.socket_id!r})"

    # asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_seen = self.opened_at = self.node.clock()
        if self.server_state is not None:
            self.server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            self._discard(data)
            return
        self.last_seen = self.node.clock()
        self.pinged_at = 0.0
        parser = self.parser
        if parser is None:
            self._handshake(data)
            return
        try:
            messages = parser.feed(data)
        except FrameError as exc:
            self._on_messages(exc.messages)
            if not self.closing:
                self._protocol_error(exc.code, exc.reason)
            return
        self._on_messages(messages)

    def _on_messages(self, messages: list[Message]) -> None:
        for index, message in enumerate(messages):
            if self.closing:
                if any(m.opcode is Opcode.CLOSE for m in messages[index:]):
                    self._end_linger()
                return
            if message.opcode is Opcode.TEXT:
                self._on_text(message.payload)
            else:
                self._on_control(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.out = None
        if self.lingering is not None:
            self.lingering.cancel()
            self.lingering = None
        if self.server_state is not None:
            self.server_state.connections.discard(self)
        if self.session is not None:
            self.node.disconnected(self)

    def pause_writing(self) -> None:
        return None

    def resume_writing(self) -> None:
        return None

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: tell the client to reconnect elsewhere (4200)."""
        if self.session is None:
            self.abort()
        else:
            self.close(CloseCode.RECONNECT, "Server is shutting down, reconnect")

    # handshake ---------------------------------------------------------------------
    def _handshake(self, data: bytes) -> None:
        door = self.door
        if door is not None:
            self.door = None
            if not door[0].is_upgrade(data):
                door[0].hand_off(self, data, door[1])
                return
        head = self._head + data if self._head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > 65536:
                self.abort()
            self._head = head
            return
        self._head = b""
        try:
            request = parse_request(head)
        except HandshakeError as exc:
            self.transport.write(exc.response())
            self.transport.close()
            return
        # Held in ``out`` (as if corked): the 101 and connection_established, or the
        # refusal, leave in one write.
        self.out = [accept_response(request.key)]
        self.parser = FrameParser(self.node.max_message_size)
        try:
            self.app = self.node.admit(self, request)
        except ConnectionError_ as exc:
            self.close(exc.code, exc.message)
            return
        self.node.established(self)
        out = self.out
        if out is not None:
            self.out = None
            self.transport.write(b"".join(out))
        if len(head) > end + 4 and not self.closing:
            # Frames sent right behind the head, before our 101 arrived (RFC 6455 says a
            # client waits; a lenient server still reads them rather than drop them).
            self.data_received(head[end + 4 :])

    # messages ----------------------------------------------------------------------
    def _on_control(self, message: Message) -> None:
        opcode = message.opcode
        if opcode is Opcode.PING:
            self._write_now(pong_frame(message.payload))
        elif opcode is Opcode.CLOSE:
            payload = message.payload
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
            self.close_code = code
            self.closing = True
            reply = 1000 if code < 1000 or code >= 5000 else code
            self._write_now(_NORMAL_CLOSE if reply == 1000 else close_frame(reply))
            self.transport.close()
        elif opcode is Opcode.BINARY:
            self.node.metrics.error_sent(None)
            self.send(_BINARY_ERROR)

    def _on_text(self, payload: bytes) -> None:
        if self.node.debug:
            logger.debug(
                "frame in %s: %s", self.socket_id, payload[:2000].decode("utf-8", "replace")
            )
        assert self.app is not None
        self.node.metrics.message_received(self.app.id, len(payload))
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

    def _handle(self, payload: bytes) -> list[Action] | None:
        session = self.session
        assert session is not None
        try:
            message = parse_client_message(payload)
            return session.handle(message, self.node.clock())
        except PusherError as exc:
            self.fail(exc)
            return None

    def _execute(self, actions: list[Action]) -> None:
        pending: list[Action] = []
        for action in actions:
            if type(action) is Send:
                self.send(action.payload)
                continue
            if type(action) is Unsubscribe:
                # Stop delivery now, not one loop turn later when the task runs.
                self.node.membership.drop_local(self, action.channel)
            pending.append(action)
        if pending:
            if self.node.eager:
                self.task = start_eagerly(self._run(pending))
            else:
                self.task = asyncio.get_running_loop().create_task(self._run(pending))

    async def _run(self, actions: list[Action]) -> None:
        try:
            await self._apply_all(actions)
            while self.inbox and not self.closing:
                next_actions = self._handle(self.inbox.popleft())
                if next_actions:
                    await self._apply_all(next_actions)
        finally:
            self.task = None
            if self.paused and not self.closing:
                self.paused = False
                self.transport.resume_reading()

    async def _apply_all(self, actions: list[Action]) -> None:
        apply = self.node.membership.apply
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
                channel = getattr(action, "channel", None)
                if channel is not None and self.session is not None:
                    self.session.forget(channel)
                self.fail(
                    SubscriptionError("Temporarily unavailable, try again", channel, 503)
                    if channel is not None
                    else PusherError("Temporarily unavailable, try again")
                )
            except Exception:  # a bug must cost this message, never the process or socket
                logger.exception("internal error while handling %s", type(action).__name__)
                self.fail(PusherError("Internal server error"))

    # errors ------------------------------------------------------------------------
    def fail(self, exc: PusherError) -> None:
        """Tell the client about ``exc``: the one place errors become frames.

        Fatal errors close the socket with their code; the others keep it open.
        """
        if isinstance(exc, ConnectionError_):
            self.close(exc.code, exc.message)
            return
        if exc.code == CloseCode.CLIENT_EVENT_RATE_LIMIT and self.app is not None:
            self.node.metrics.rate_limited(self.app.id, "client_events")
        if isinstance(exc, SubscriptionError) and exc.channel:
            error_type = "AuthError" if exc.status in (401, 403) else "SubscriptionError"
            # Object data, as soketi sends it; pusher-js routes it to the channel, so
            # Echo's .error() callback fires.
            self.send(
                orjson.dumps(
                    {
                        "event": "pusher:subscription_error",
                        "channel": exc.channel,
                        "data": {"type": error_type, "error": exc.message, "status": exc.status},
                    }
                )
            )
        self.node.metrics.error_sent(exc.code)
        self.send(encode_error(exc.message, exc.code))

    def _protocol_error(self, code: int, reason: str) -> None:
        if code == CloseStatus.TOO_BIG:
            self.send(encode_error(reason, None))
        self.close(code, reason, error_frame=False)

    # writing -----------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """Send one JSON text message, after any frames already queued for this socket."""
        if self.closing:
            return
        if self.node.debug:
            logger.debug(
                "frame out %s: %s", self.socket_id, payload[:2000].decode("utf-8", "replace")
            )
        frame = text_frame(payload)
        if self.out is not None:
            self.out.append(frame)
            return
        transport = self.transport
        transport.write(frame)
        if transport.get_write_buffer_size() > self.node.hub.max_buffer:
            self.overflow()

    def _write_now(self, frame: bytes) -> None:
        out = self.out
        if out is not None:
            self.out = None
            out.append(frame)
            self.transport.write(b"".join(out))
        else:
            self.transport.write(frame)

    def close(self, code: int, message: str, error_frame: bool = True) -> None:
        """Send ``pusher:error`` (for 4xxx codes) and a close frame, then close."""
        if self.closing:
            return
        if code != CloseStatus.NORMAL:
            self.node.metrics.error_sent(code)
        if error_frame and code >= 4000:
            self._write_now(text_frame(encode_error(message, code)))
        self.closing = True
        self.closing_since = self.node.clock()
        self.close_code = code
        self._write_now(close_frame(code, message))
        self._linger()

    def _linger(self) -> None:
        """Close TCP once the client answered our close frame (see ``server.linger``)."""
        if self.parser is None or self.transport.is_closing():
            self.transport.close()
            return
        if self.paused:  # a full inbox stopped reading; the client's close must get in
            self.paused = False
            self.transport.resume_reading()
        self.lingering = asyncio.get_running_loop().call_later(
            linger.LINGER_SECONDS, self._end_linger
        )

    def _discard(self, data: bytes) -> None:
        if self.lingering is None or self.parser is None:
            return
        self.discarded += len(data)
        if self.parser.discard_until_close(data) or self.discarded > linger.LINGER_BYTES:
            self._end_linger()

    def _end_linger(self) -> None:
        if self.lingering is not None:
            self.lingering.cancel()
            self.lingering = None
        self.transport.close()

    def overflow(self) -> None:
        """Cut off a slow consumer: it stops reading, so stop writing to it (4100)."""
        if self.closing:
            return
        logger.info(
            "slow consumer cut off: socket %s had %d unsent bytes",
            self.socket_id,
            self.transport.get_write_buffer_size(),
        )
        if self.app is not None:
            self.node.metrics.slow_consumer(self.app.id)
        self.close(CloseCode.OVER_CAPACITY, "Slow consumer: too many unsent bytes")
        # The close frame waits behind the backlog; the sweep aborts it if it never drains.

    def abort(self) -> None:
        self.closing = True
        self.transport.abort()
