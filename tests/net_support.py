"""Loopback helpers shared by the tests that start real servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lightson.devservices import free_port

T = TypeVar("T")
__all__ = ["eventually", "free_port", "run"]


def run(work: Awaitable[T], timeout_s: float = 60.0) -> T:
    """Run a scenario on a new event loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(work, timeout_s)

    return asyncio.run(bounded())


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Wait until ``check()`` is truthy and return it; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
