"""A loopback Bedrock runtime: verifies each request's SigV4 signature by re-signing it with
botocore (or its Bearer key), records it, and answers as scripted (Converse shapes)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from loopback import serve

__all__ = ["Bedrock", "Seen", "converse", "resign"]

ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def converse(text: str, stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    """A Converse answer with one text block (and `extra` blocks before it)."""
    blocks = [*extra.pop("blocks", []), {"text": text}]
    return {"output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": stop, "usage": {"inputTokens": 100, "outputTokens": 4,
                                          "totalTokens": 104}, "metrics": {"latencyMs": 5}}


def resign(method: str, url: str, headers: dict[str, str], body: bytes, creds: Credentials,
           region: str) -> str:
    """The signature botocore computes for this request as received (its own X-Amz-Date)."""
    auth = headers["Authorization"]
    signed = auth.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    kept = {k: v for k, v in headers.items() if k.lower() in signed and k.lower() != "host"}
    request = AWSRequest(method=method, url=url, data=body, headers=kept)
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(creds, "bedrock", region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


@dataclass
class Seen:
    """One request as it arrived, and whether its credentials checked out."""

    raw_path: str
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool


@dataclass
class Bedrock:
    """The server, in its own thread; `reply(seen)` gives (status, headers, JSON) per request."""

    region: str = "us-east-1"
    token: str | None = None  # a Bedrock API key it accepts as Bearer
    session_token: str | None = None
    reply: Callable[[Seen], tuple[int, dict[str, str], Any]] = lambda s: (200, {}, converse(
        "Somewhat like me."))
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._serve(),), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Bedrock:
        self._thread.start()
        assert self._ready.wait(30), "the loopback Bedrock did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/model/{model}/converse", self._handle)
        async with serve(app) as root:
            self.port = int(root.rsplit(":", 1)[1])
            self._ready.set()
            await self._stop.wait()

    def _verified(self, request: web.Request, raw: bytes) -> bool:
        headers = dict(request.headers)
        auth = headers.get("Authorization", "")
        if self.token is not None:
            return auth == f"Bearer {self.token}"
        if not auth.startswith("AWS4-HMAC-SHA256 ") or "Signature=" not in auth:
            return False
        creds = Credentials(ACCESS, SECRET, self.session_token)
        url = f"http://{request.host}{request.raw_path}"
        want = resign(request.method, url, headers, raw, creds, self.region)
        return auth.rsplit("Signature=", 1)[1] == want

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = Seen(request.raw_path, dict(request.headers), orjson.loads(raw),
                    self._verified(request, raw))
        self.seen.append(seen)
        if not seen.verified:
            return web.json_response(
                {"message": "The request signature we calculated does not match the signature "
                 "you provided."}, status=403,
                headers={"x-amzn-ErrorType": "InvalidSignatureException:http://internal/"})
        status, headers, payload = self.reply(seen)
        return web.json_response(payload, status=status, headers=headers)
