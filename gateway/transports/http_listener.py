"""An HTTP listener the gateway starts and stops itself (the API, and ZK ADMS on its own address)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn


class Listener(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gateway owns SIGINT/SIGTERM and stops its listeners itself, in order.
        yield


async def serve(config: uvicorn.Config, listen: str) -> tuple[Listener, asyncio.Task[Any]]:
    """The listener serving, once it listens (or the reason it cannot)."""
    server = Listener(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
            raise RuntimeError(f"could not listen on {listen}")
        await asyncio.sleep(0.02)
    return server, task


async def stop(listeners: list[tuple[Listener, asyncio.Task[Any]]], timeout: float) -> None:
    for server, _ in listeners:
        server.should_exit = True
    for _, task in listeners:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout)
