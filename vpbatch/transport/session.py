"""The one kind of aiohttp session vpbatch sends through: no hidden re-sends."""

from __future__ import annotations

from typing import Any

import aiohttp

__all__ = ["client_session"]


def client_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp.ClientSession that never re-sends a request by itself."""
    session = aiohttp.ClientSession(**kwargs)
    # aiohttp quietly re-sends an idempotent request (GET: batch polls, downloads, data fetch)
    # once when a reused keep-alive connection turns out dead. That is a hidden second retry
    # loop with uncounted attempts; vpbatch.transport.retry.retrying is the only one. No public
    # switch exists (aiohttp 3.10-3.14), so the attribute is set directly.
    session._retry_connection = False
    return session
