"""The one way vpbatch opens an HTTP session: it never sends a request twice by itself."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import anyio
import anyio.abc
import pytest

from vpbatch.transport.session import client_session


def _sent_by(make_session: Callable[[], aiohttp.ClientSession]) -> list[bytes]:
    """The request lines a loopback server saw for one GET that it answers by hanging up."""
    seen: list[bytes] = []

    async def hang_up(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
            seen.append(head.split(b"\r\n", 1)[0])

    async def main() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, hang_up)
            async with make_session() as session:
                with pytest.raises(aiohttp.ServerDisconnectedError):
                    async with session.get(f"http://127.0.0.1:{port}/v1/batches/b1"):
                        pass
            tg.cancel_scope.cancel()

    anyio.run(main)
    return seen


def test_aiohttp_on_its_own_sends_a_dropped_get_twice() -> None:
    # The hidden second attempt that client_session switches off (aiohttp >= 3.11 lets it).
    assert _sent_by(aiohttp.ClientSession) == [b"GET /v1/batches/b1 HTTP/1.1"] * 2


def test_a_client_session_sends_a_dropped_get_once_and_reports_it() -> None:
    assert _sent_by(client_session) == [b"GET /v1/batches/b1 HTTP/1.1"]
