"""An aiohttp app served on a free port of 127.0.0.1 for one block: the tests' fake endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["serve"]


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its root URL (`http://127.0.0.1:PORT`)."""
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
