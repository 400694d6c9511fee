"""``pusherd tail CHANNEL…``: connect like a client and print every event as it arrives.

Private, presence and encrypted channels are authorized here, with the app secret from
the config, exactly as an app's ``/broadcasting/auth`` would sign them; encrypted
payloads are opened with the app's master key (see ``pusherd.tools.crypto``). Events go
to stdout, one line each (or one JSON object with ``--json``); connection news and
errors go to stderr, so stdout can be piped. SIGINT/SIGTERM close the socket with 1000
and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pusherd import __version__
from pusherd.protocol.channels import channel_kind
from pusherd.protocol.signing import sign
from pusherd.tools.crypto import CryptoUnavailable, decrypt, master_key, secretbox_available
from pusherd.tools.target import Target

__all__ = ["TailOptions", "channel_auth", "tail"]

CONNECT_TIMEOUT = 10.0


@dataclass
class TailOptions:
    channels: list[str]
    as_json: bool = False
    count: int = 0  # stop after this many events; 0 = until interrupted
    user_id: str = field(default_factory=lambda: "pusherd-tail-" + secrets.token_hex(4))
    user_info: dict[str, Any] | None = None


def channel_auth(
    key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str:
    """The ``auth`` string of a private/presence/encrypted subscription."""
    message = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data else "")
    return f"{key}:{sign(secret, message)}"


def _subscribe_frame(target: Target, socket_id: str, channel: str, opts: TailOptions) -> bytes:
    data: dict[str, Any] = {"channel": channel}
    kind = channel_kind(channel)
    if kind.is_presence:
        member: dict[str, Any] = {"user_id": opts.user_id}
        if opts.user_info is not None:
            member["user_info"] = opts.user_info
        channel_data = orjson.dumps(member).decode()
        data["channel_data"] = channel_data
        data["auth"] = channel_auth(
            target.app.key, target.app.secret, socket_id, channel, channel_data
        )
    elif kind.needs_auth:
        data["auth"] = channel_auth(target.app.key, target.app.secret, socket_id, channel)
    return orjson.dumps({"event": "pusher:subscribe", "data": data})


class _Printer:
    def __init__(self, target: Target, opts: TailOptions, out: TextIO, err: TextIO) -> None:
        self.opts = opts
        self.out = out
        self.err = err
        self.printed = 0
        self.key = master_key(target.app, os.environ)
        self.can_decrypt = self.key is not None and secretbox_available()
        self.warned = False

    def note(self, text: str) -> None:
        print(f"pusherd tail: {text}", file=self.err, flush=True)

    def event(self, message: dict[str, Any]) -> None:
        channel = str(message.get("channel", ""))
        data = message.get("data")
        if channel_kind(channel).is_encrypted and not str(message.get("event")).startswith(
            "pusher"
        ):
            data = self._open(channel, data)
        if self.opts.as_json:
            shown = dict(message)
            shown["data"] = _maybe_json(data)
            line = orjson.dumps(shown).decode()
        else:
            text = data if isinstance(data, str) else orjson.dumps(data).decode()
            line = f"{channel} {message.get('event')} {text}"
            if "user_id" in message:
                line += f" (user {message['user_id']})"
        print(line, file=self.out, flush=True)
        self.printed += 1

    def _open(self, channel: str, data: object) -> object:
        if not self.can_decrypt or self.key is None:
            if not self.warned:
                why = (
                    "no encryption master key is configured"
                    if self.key is None
                    else "PyNaCl is not installed (pip install 'pusherd[encryption]')"
                )
                self.note(f"{channel} is encrypted and {why}: printing ciphertext")
                self.warned = True
            return data
        try:
            return decrypt(channel, self.key, data)
        except (ValueError, CryptoUnavailable) as exc:
            self.note(f"{channel}: {exc}; printing ciphertext")
            return data


def _maybe_json(data: object) -> object:
    if isinstance(data, str):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
    return data


async def _run(target: Target, opts: TailOptions, printer: _Printer, stop: asyncio.Event) -> int:
    url = (
        f"{target.ws_url}/app/{target.app.key}?protocol=7&client=pusherd-tail&version={__version__}"
    )
    ssl_context = None
    if url.startswith("wss://") and not target.verify_tls:
        ssl_context = ssl.create_default_context()
        ssl_context.check_hostname = False
        ssl_context.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(CONNECT_TIMEOUT):
        ws = await connect(url, ssl=ssl_context, ping_interval=None, max_size=None)
    try:
        return await _session(ws, target, opts, printer, stop)
    finally:
        await ws.close(1000, "pusherd tail done")


async def _session(
    ws: ClientConnection, target: Target, opts: TailOptions, printer: _Printer, stop: asyncio.Event
) -> int:
    pending = set(opts.channels)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            receiving = asyncio.ensure_future(ws.recv())
            done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await receiving
                printer.note("interrupted, closing")
                return 0
            try:
                raw = receiving.result()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                reason = exc.rcvd.reason if exc.rcvd else ""
                printer.note(f"the server closed the connection ({code} {reason})".rstrip())
                return 1
            message = orjson.loads(raw)
            event = message.get("event")
            if event == "pusher:connection_established":
                socket_id = orjson.loads(message["data"])["socket_id"]
                printer.note(f"connected to {target.ws_url} as socket {socket_id}")
                for channel in opts.channels:
                    await ws.send(_subscribe_frame(target, socket_id, channel, opts).decode())
            elif event == "pusher:ping":
                await ws.send('{"event":"pusher:pong","data":{}}')
            elif event == "pusher_internal:subscription_succeeded":
                channel = message.get("channel", "")
                pending.discard(channel)
                printer.note(f"subscribed to {channel}")
                if not pending:
                    printer.note("waiting for events (Ctrl-C to stop)")
            elif event == "pusher:subscription_error":
                printer.note(f"cannot subscribe to {message.get('channel')}: {message.get('data')}")
                return 1
            elif event == "pusher:error":
                printer.note(f"error from the server: {message.get('data')}")
            elif "channel" in message:
                printer.event(message)
                if opts.count and printer.printed >= opts.count:
                    return 0
    finally:
        stopping.cancel()


def tail(
    target: Target, opts: TailOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Run until interrupted (or ``opts.count`` events); return the exit status."""
    printer = _Printer(target, opts, out, err)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await _run(target, opts, printer, stop)
        except (OSError, TimeoutError) as exc:
            printer.note(f"cannot connect to {target.ws_url}: {exc or 'timed out'}")
            return 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())
