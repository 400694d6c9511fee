"""``start_eagerly``: finish at once when nothing waits, resume correctly when it does."""

from __future__ import annotations

import asyncio

import pytest

from pusherd.server.eager import start_eagerly


async def test_start_eagerly_runs_a_non_waiting_coroutine_to_completion_at_once() -> None:
    seen: list[str] = []

    async def work() -> None:
        seen.append("ran")

    assert start_eagerly(work()) is None
    assert seen == ["ran"]


async def test_start_eagerly_resumes_after_an_awaited_future_completes() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    async def work() -> None:
        seen.append("before")
        seen.append(await gate)
        await asyncio.sleep(0)
        seen.append("after")

    done = start_eagerly(work())
    assert done is not None and seen == ["before"]
    gate.set_result(7)
    async with asyncio.timeout(5):
        await done
    assert seen == ["before", 7, "after"]


async def test_start_eagerly_reports_a_failure_after_waiting() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        await gate
        raise ValueError("boom")

    done = start_eagerly(work())
    assert done is not None
    gate.set_result(None)
    with pytest.raises(ValueError, match="boom"):
        async with asyncio.timeout(5):
            await done


async def test_start_eagerly_logs_a_synchronous_failure_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def work() -> None:
        raise RuntimeError("bug")

    assert start_eagerly(work()) is None
    assert "eagerly started coroutine failed" in caplog.text
