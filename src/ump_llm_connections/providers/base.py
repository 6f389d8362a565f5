"""The provider interface: one request, response, stream chunk and error for every wire format.

An adapter turns a ``ChatRequest`` into its provider's HTTP call and the answer back into a
``ChatResponse`` (or ``StreamChunk`` s) — the types are in ``types.py``, the ``Target`` it
calls in ``target.py``; this module does the HTTP, the retries and the error classification for
all of them, into one ``ProviderError`` with an ``ErrorKind`` (``errors.py``).

``rate_limited``, ``timeout``, ``unreachable`` and ``server_error`` are retried (exponential
backoff with jitter, Retry-After honoured), up to the connection's ``max_retries``; a stream only
until its first chunk. Every message is redacted (``redact.py``): no secret of the connection, nor
any piece of one, nor any credential an upstream echoes, reaches it.

No upstream read is unbounded: an answer (and each event of a stream) may hold at most the
target's ``max_response_bytes`` (``UMP_MAX_UPSTREAM_BYTES``), an error body ``ERROR_BODY_BYTES``;
past that the read stops with ``bad_response``.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

import aiohttp
import orjson

from ump_llm_connections.domain.secret import SecretText
from ump_llm_connections.providers.egress import BlockedAddress
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.reading import BodyTooLarge, read_limited
from ump_llm_connections.providers.redact import redact
from ump_llm_connections.providers.target import HttpCall, Target
from ump_llm_connections.providers.types import ChatRequest, ChatResponse, StreamChunk, ToolCall

T = TypeVar("T")

MAX_RETRY_AFTER_S = 30.0  # a longer wait is handed to the caller instead of slept through
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
ERROR_BODY_BYTES = 64 * 1024  # an error body past this is not read: its status says enough
DETAIL_CHARS = 300  # of the upstream's own words, in a message
LIMIT_SETTING = "UMP_MAX_UPSTREAM_BYTES"


class Adapter(ABC):
    """Base of the adapters, one per wire format."""

    api_format: ClassVar[str]

    def __init__(
        self,
        target: Target,
        http: aiohttp.ClientSession,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.target = target
        self.http = http
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=target.timeout)
        # A stream may run long; what must not pass is `timeout` without a byte.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=target.timeout, sock_read=target.timeout
        )

    # -- what each wire format provides -------------------------------------------------------

    @abstractmethod
    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall: ...

    @abstractmethod
    def parse_response(self, body: Any) -> ChatResponse: ...

    @abstractmethod
    def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        """Chunks of a streamed answer; raises ``bad_response`` if it ends unfinished."""

    @abstractmethod
    def models_call(self) -> HttpCall: ...

    @abstractmethod
    def parse_models(self, body: Any) -> list[str]: ...

    def is_auth_error(self, status: int, body: Any) -> bool:
        """For formats that report a bad key with another status than 401/403."""
        return False

    def error_detail(self, body: Any) -> str | None:
        """The upstream's own words from an error body, if it has any."""
        if isinstance(body, dict):
            error = body.get("error", body)
            if isinstance(error, dict):
                message = error.get("message")
                return str(message) if message else None
            if isinstance(error, str):
                return error
        return None

    # -- shared: HTTP, retries, errors --------------------------------------------------------

    async def chat(self, request: ChatRequest, *, retry: bool = True) -> ChatResponse:
        """The answer; ``retry=False`` makes one attempt (a pool's next member is the retry)."""
        call = self.chat_call(request, stream=False)
        return await self._retrying(call, self.parse_response, retry)

    async def list_models(self) -> list[str]:
        return await self._retrying(self.models_call(), self.parse_models, True)

    async def stream(
        self, request: ChatRequest, *, retry: bool = True
    ) -> AsyncGenerator[StreamChunk, None]:
        """Stream an answer. Retries happen only before the first chunk reached the caller."""
        call = self.chat_call(request, stream=True)
        timeout = self._stream_timeout
        attempt = 0
        while True:
            try:
                response = await self._open(call, timeout)
            except ProviderError as exc:
                if not retry or not await self._should_retry(exc, attempt):
                    raise
                attempt += 1
                continue
            break
        async with response:
            try:
                async for chunk in self.parse_stream(response):
                    yield chunk
            except BodyTooLarge:
                raise self.too_large("an event of the stream") from None
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise self._timeout_error() from None
            except (orjson.JSONDecodeError, UnicodeDecodeError):
                raise self._error(
                    ErrorKind.bad_response, f"{self.target.host} sent invalid JSON in its stream"
                ) from None
            except (aiohttp.ClientError, KeyError, IndexError, TypeError, ValueError) as exc:
                raise self._cut_error(exc) from None

    async def _retrying(self, call: HttpCall, parse: Callable[[Any], T], retry: bool) -> T:
        tries = 0
        while True:
            try:
                return await self._fetch(call, parse)
            except ProviderError as exc:
                if not retry or not await self._should_retry(exc, tries):
                    raise
                tries += 1

    async def _should_retry(self, exc: ProviderError, tries: int) -> bool:
        """Sleep before the next try and say yes, or say no."""
        if not exc.retryable or tries >= self.target.max_retries:
            return False
        if exc.retry_after is not None:
            if exc.retry_after > MAX_RETRY_AFTER_S:
                return False
            delay = exc.retry_after
        else:
            ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**tries)
            delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto
        await self._sleep(delay)
        return True

    async def _fetch(self, call: HttpCall, parse: Callable[[Any], T]) -> T:
        timeout = self._timeout
        try:
            async with await self._open(call, timeout) as response:
                raw = await read_limited(response, self.target.max_response_bytes)
        except BodyTooLarge:
            raise self.too_large("the answer") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise self._timeout_error() from None
        except aiohttp.ClientError as exc:
            raise self._cut_error(exc) from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._error(
                ErrorKind.bad_response, f"{self.target.host} answered with invalid JSON"
            ) from None
        try:
            return parse(body)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._error(
                ErrorKind.bad_response,
                f"{self.target.host} answered in an unexpected shape ({type(exc).__name__})",
            ) from None

    async def _open(self, call: HttpCall, limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """Send the request; a non-2xx answer becomes a classified ``ProviderError``.

        Neither the revealed headers nor an error body (which may echo them) is a local of this
        frame: a traceback that prints its locals finds only sealed values here.
        """
        try:
            response = await self.send(call, limits)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise self._timeout_error() from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                raise self._error(
                    ErrorKind.unreachable, f"{self.target.host}: {exc.os_error.strerror}"
                ) from None
            reason = exc.os_error.strerror or str(exc.os_error)
            raise self._error(
                ErrorKind.unreachable,
                f"cannot connect to {self.target.host} ({reason}): is the server running and "
                "the base_url right?",
            ) from None
        except aiohttp.ClientError as exc:
            raise self._error(
                ErrorKind.unreachable, f"cannot reach {self.target.host} ({type(exc).__name__})"
            ) from None
        if response.status < 300:
            return response
        raise self._http_error(response.status, await _error_body(response), response.headers)

    async def send(self, call: HttpCall, limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """Put one call on the wire. A format that signs its requests over the exact body
        (Bedrock's SigV4) overrides this; whatever it sends, it never follows a redirect."""
        return await self.http.request(
            call.method,
            call.url,
            data=orjson.dumps(call.body) if call.body is not None else None,
            headers=self.wire_headers(call),
            timeout=limits,
            allow_redirects=False,
        )

    def wire_headers(self, call: HttpCall) -> dict[str, str]:
        """The headers as sent: the connection's extra headers, then the call's, revealed here
        and nowhere else."""
        headers = {name: value.reveal() for name, value in self.target.extra_headers.items()}
        for name, value in call.headers.items():
            headers[name] = value.reveal() if isinstance(value, SecretText) else value
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def _http_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> ProviderError:
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        kind, text = self.classify(status, body, headers)
        detail = self.error_detail(body)
        if detail:
            text += f" ({self.detail(detail)})"
        retry_after = (
            _retry_after(headers.get("Retry-After")) if kind is ErrorKind.rate_limited else None
        )
        return self._error(kind, text, status=status, retry_after=retry_after)

    def classify(self, status: int, body: Any, headers: Mapping[str, str]) -> tuple[ErrorKind, str]:
        """An HTTP error's kind and message (without the upstream's words, added after). A
        format that names its errors (Bedrock's ``x-amzn-ErrorType``) overrides this."""
        host = self.target.host
        if status in (401, 403) or self.is_auth_error(status, body):
            kind, text = ErrorKind.auth, f"{status} from {host}: check the API key"
        elif status == 404:
            kind = ErrorKind.not_found
            text = f"404 from {host}: check the model name '{self.target.model}' and the base_url"
        elif status == 429:
            kind, text = ErrorKind.rate_limited, f"429 from {host}: rate limited"
        elif status in (408, 504):
            kind, text = ErrorKind.timeout, f"{status} from {host}: the upstream timed out"
        elif status >= 500:
            kind, text = ErrorKind.server_error, f"{status} from {host}: the server failed"
        elif status < 400:  # never followed: a redirect could lead to a metadata endpoint
            kind = ErrorKind.bad_request
            text = (
                f"{status} from {host}: redirects are not followed; put where it leads in base_url"
            )
        else:
            kind, text = ErrorKind.bad_request, f"{status} from {host}: the request was refused"
        return kind, text

    def _timeout_error(self) -> ProviderError:
        return self._error(
            ErrorKind.timeout,
            f"no answer from {self.target.host} within {self.target.timeout:g} s",
        )

    def too_large(self, what: str) -> ProviderError:
        limit = self.target.max_response_bytes
        return self._error(
            ErrorKind.bad_response,
            f"{what} from {self.target.host} passed {limit} bytes, the most this server reads "
            f"from an upstream ({LIMIT_SETTING})",
        )

    def _cut_error(self, exc: BaseException) -> ProviderError:
        return self._error(
            ErrorKind.bad_response,
            f"the answer from {self.target.host} broke off ({type(exc).__name__})",
        )

    def incomplete(self) -> ProviderError:
        """For ``parse_stream``: the stream ended before its end marker."""
        return self._error(
            ErrorKind.bad_response, f"the stream from {self.target.host} ended before the answer"
        )

    def untranslatable(self, what: str, kind: object) -> ProviderError:
        """For parsers: content the shared types cannot carry is refused, never dropped."""
        return self._error(
            ErrorKind.bad_response,
            f"{self.target.host} sent a {what} of type '{self.detail(str(kind))[:60]}', which "
            "this gateway cannot translate",
        )

    def object_tool_call(self, call_id: str, name: str, arguments: Any, block: str) -> ToolCall:
        """A tool call from a format whose arguments are a JSON object (``block`` names its
        content block): any other value is refused, never passed on as ``{}``."""
        if not isinstance(arguments, dict):
            raise self._error(
                ErrorKind.bad_response,
                f"{self.target.host} sent a {block} block whose input is not an object",
            )
        return ToolCall(id=call_id, name=name, arguments=orjson.dumps(arguments).decode())

    def detail(self, text: str) -> str:
        """The upstream's own words, fit for a message: redacted first, then shortened (a cut
        made first could split a secret so that it no longer matches)."""
        return redact(text[: DETAIL_CHARS * 16], self.target.secrets())[:DETAIL_CHARS]

    def _error(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        message = redact(message, self.target.secrets())
        return ProviderError(kind, message, status=status, retry_after=retry_after)


async def _error_body(response: aiohttp.ClientResponse) -> bytes:
    """The start of an error answer; the rest is discarded (the connection closes rather than
    drain it)."""
    try:
        return await read_limited(response, ERROR_BODY_BYTES)
    except (TimeoutError, aiohttp.ClientError, BodyTooLarge):
        return b""
    finally:
        response.release()


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds, from either of its two forms (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
