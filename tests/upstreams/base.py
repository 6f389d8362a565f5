"""What every fake upstream shares: a real aiohttp server on 127.0.0.1 in a thread of its own,
switchable behaviours, and a record of the requests it received.

    with FakeOpenAI(api_key="sk-test") as fake:
        fake.behaviour = Behaviour.rate_limited        # every request from now on
        fake.script = [Behaviour.server_error]         # or only the next requests, in order
        ... point a client at fake.url ...
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-test"

Subclasses add their routes and render errors in their provider's format.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

import orjson
from aiohttp import web


class Behaviour(enum.StrEnum):
    normal = "normal"
    slow_first_token = "slow_first_token"  # waits `delay` s before the first byte of the answer
    unauthorized = "unauthorized"  # 401 in the provider's error format
    model_not_found = "model_not_found"  # 404 in the provider's error format
    rate_limited = "rate_limited"  # 429 with Retry-After: `retry_after`
    server_error = "server_error"  # 500 in the provider's error format
    loading = "loading"  # 503 "loading": a model server (vLLM) still loading its weights
    hang = "hang"  # never answers
    malformed = "malformed"  # 200 whose body (or first stream event) is not valid JSON
    cut_stream = "cut_stream"  # some of the answer, then the connection closes mid-way
    # Hostile ones (any fake, any route):
    huge_body = "huge_body"  # `huge_status` whose body is `body_bytes` (None: endless), one line
    echo_credentials = "echo_credentials"  # `echo_status` error echoing every request header
    # FakeOpenAI's chat only:
    huge_event = "huge_event"  # one normal stream event, then one of `body_bytes`
    long_answer = "long_answer"  # a valid answer of `body_bytes` of text, never held whole
    endless_stream = "endless_stream"  # stream chunks without a pause, never finishing
    slow_endless_stream = "slow_endless_stream"  # a chunk every `delay` s, never finishing


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = "call_fake_1"


@dataclass
class Reply:
    """What a normal answer contains."""

    text: str = "Hello! I am doing well, thank you."
    prompt_tokens: int = 12  # the whole prompt, cached parts included
    completion_tokens: int = 9  # the whole answer, reasoning included
    cached_tokens: int = 0  # of the prompt: read from the prompt cache
    cache_write_tokens: int = 0  # of the prompt: written to it (Anthropic)
    reasoning_tokens: int = 0  # of the answer: thinking
    report_usage: bool = True  # False: the answer carries no token counts
    tool_call: ToolCall | None = None  # answered instead of text when the request offers tools
    finish_reason: str = "stop"

    def words(self) -> list[str]:
        """The text in stream-sized pieces that join back to it exactly."""
        parts = self.text.split(" ")
        return [p if i == len(parts) - 1 else p + " " for i, p in enumerate(parts)]


# Not echoed, so the credentials sit right after the padding.
PLAIN_HEADERS = frozenset(
    {"host", "accept", "accept-encoding", "user-agent", "content-length", "content-type"}
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """Base of the fakes. ``url`` is the server's root, e.g. http://127.0.0.1:43817."""

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: tuple[str, ...] = ("fake-model", "fake-model-large"),
        delay: float = 0.5,
        retry_after: int = 1,
    ) -> None:
        self.api_key = api_key
        self.models = list(models)
        self.delay = delay
        self.retry_after = retry_after
        self.behaviour = Behaviour.normal
        self.script: list[Behaviour] = []
        self.reply = Reply()
        self.body_bytes: int | None = None  # huge_body, huge_event, long_answer
        self.huge_status = 200  # huge_body
        self.echo_status = 401  # echo_credentials
        self.echo_padding = 261  # echo_credentials: this many "x" before the echoed headers
        self.requests: list[Recorded] = []
        self.streams = StreamWatch()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- to be provided by each provider ------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_response(self, status: int, message: str) -> web.Response:
        """An error in the provider's own JSON format."""
        raise NotImplementedError

    def authorized(self, request: web.Request) -> bool:
        """Whether the request carries ``api_key`` the provider's way."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_behaviour(self) -> Behaviour:
        return self.script.pop(0) if self.script else self.behaviour

    async def record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        return body

    async def refuse(
        self, request: web.Request, behaviour: Behaviour, model: str | None
    ) -> web.StreamResponse | None:
        """The answer for every behaviour that is not about the answer's body, or None."""
        if behaviour is Behaviour.echo_credentials:
            echoed = "; ".join(
                f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in PLAIN_HEADERS
            )
            return self.error_response(self.echo_status, "x" * self.echo_padding + " " + echoed)
        if behaviour is Behaviour.huge_body:
            return await self.huge_body(request)
        if self.api_key is not None and not self.authorized(request):
            return self.error_response(401, "Invalid API key provided.")
        if behaviour is Behaviour.unauthorized:
            return self.error_response(401, "Invalid API key provided.")
        if behaviour is Behaviour.model_not_found or (
            model is not None and model not in self.models
        ):
            return self.error_response(404, f"The model '{model}' does not exist.")
        if behaviour is Behaviour.rate_limited:
            response = self.error_response(429, "Rate limit reached. Try again later.")
            response.headers["Retry-After"] = str(self.retry_after)
            return response
        if behaviour is Behaviour.server_error:
            return self.error_response(500, "The server had an error processing your request.")
        if behaviour is Behaviour.loading:
            return self.error_response(503, "loading: the model is not ready yet")
        if behaviour is Behaviour.hang:
            await asyncio.sleep(3600)
        if behaviour is Behaviour.slow_first_token:
            await asyncio.sleep(self.delay)
        return None

    @staticmethod
    def json(body: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    @staticmethod
    async def cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """Close the connection under a response that is not finished."""
        transport = request.transport
        if transport is not None:
            transport.close()
        return response

    async def huge_body(self, request: web.Request) -> web.StreamResponse:
        """``body_bytes`` (or endless) bytes without a newline, written as they are made."""
        response = web.StreamResponse(
            status=self.huge_status, headers={"Content-Type": "text/event-stream"}
        )
        await response.prepare(request)
        await stream_bytes(response, b"data: ", b"x", self.body_bytes)
        return response

    @staticmethod
    def malformed() -> web.Response:
        return web.Response(text='{"id": "x", "choices": [', content_type="application/json")

    def start(self) -> Self:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            self.add_routes(app)
            self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None  # stopping twice is fine (a test may kill it)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class StreamWatch:
    """Whether an endless stream's client went away."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    async def endless(self, sse: SSE, chunk: bytes, pause: float) -> web.StreamResponse:
        """Send ``chunk`` forever (yielding to the loop each time) until the client leaves."""
        try:
            while True:
                await sse.send(chunk)
                await asyncio.sleep(pause)
        finally:
            self.closed.set()


@dataclass
class SSE:
    """Server-sent events on a prepared response."""

    response: web.StreamResponse

    @classmethod
    async def open(cls, request: web.Request) -> SSE:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return cls(response)

    async def send(self, data: Any, event: str | None = None) -> None:
        payload = data if isinstance(data, (bytes, str)) else orjson.dumps(data)
        if isinstance(payload, str):
            payload = payload.encode()
        head = f"event: {event}\n".encode() if event else b""
        await self.response.write(head + b"data: " + payload + b"\n\n")


PIECE = 64 * 1024


async def stream_bytes(
    response: web.StreamResponse, head: bytes, fill: bytes, size: int | None, tail: bytes = b""
) -> None:
    """Write ``head``, ``size`` bytes of ``fill`` (endless if None) and ``tail``, a piece at a
    time: the fake never holds a large body."""
    await response.write(head)
    piece = fill * (PIECE // len(fill))
    left = size
    while left is None or left > 0:
        chunk = piece if left is None or left >= len(piece) else piece[:left]
        await response.write(chunk)
        if left is not None:
            left -= len(chunk)
    if tail:
        await response.write(tail)
