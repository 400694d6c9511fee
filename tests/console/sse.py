"""Read a console stream (Server-Sent Events) over a real HTTP connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

__all__ = ["Stream", "open_stream"]


class Stream:
    """The lines and skip markers a stream has sent; ``expect`` awaits a matching line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.skipped = 0
        self.last_id = ""
        self.changed = asyncio.Event()

    async def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if match(line):
                        return line
                self.changed.clear()
                await self.changed.wait()

    async def _read(self, response: httpx.Response) -> None:
        event = ""
        async for raw in response.aiter_lines():
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("id: "):
                self.last_id = raw[4:]
            elif raw.startswith("data: "):
                data = json.loads(raw[6:])
                if event == "lines":
                    self.lines.extend(data)
                elif event == "skipped":
                    self.skipped += data["count"]
                self.changed.set()


@contextlib.asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, app_id: str = "12345", rate: int = 1000, last_id: str = ""
) -> AsyncIterator[Stream]:
    stream = Stream()
    headers = {"last-event-id": last_id} if last_id else {}
    async with http.stream(
        "GET", f"/console/api/apps/{app_id}/stream?rate={rate}", timeout=None, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = asyncio.create_task(stream._read(response))
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader
