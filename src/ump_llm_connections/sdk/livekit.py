"""LiveKit Agents: a connection (or a pool) as a LiveKit ``llm.LLM`` that calls the gateway.

``Connection.create_llm_instance()`` calls :func:`create_llm_instance`. The instance is
livekit-plugins-openai's ``LLM`` pointed at ``{gateway_url}``, with ``model`` the connection's
(or pool's) name and ``X-UMP-Source: livekit`` on every call, so the gateway counts the calls as
LiveKit's and refuses them for a connection not enabled for LiveKit. It goes wherever a LiveKit
LLM goes (``AgentSession(llm=...)``), and offers the guide's one-shot call::

    llm = connection.create_llm_instance()
    response = await llm.generate(prompt="Hello", temperature=0.2, max_tokens=100)
    response.text, response.usage

Only this module imports livekit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import openai
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError, llm
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import is_given
from livekit.plugins import openai as lk_openai

from ump_llm_connections.sdk.errors import GatewayError

if TYPE_CHECKING:
    from ump_llm_connections.sdk.connection import Connection

__all__ = ["GatewayLLM", "create_llm_instance"]

SOURCE = "livekit"
NO_TOKEN = "ump-no-token"  # noqa: S105 (what the gateway gets when tokens are off)
# Inside a hosted LiveKit job the plugin adds the worker's LiveKit credential to every call
# (meant for LiveKit Inference): it is LiveKit's, and stays off the wire to the gateway.
WORKER_CREDENTIAL_HEADER = "x-livekit-worker-token"


async def _drop_livekit_credential(request: Any) -> None:
    request.headers.pop(WORKER_CREDENTIAL_HEADER, None)


class GatewayLLM(lk_openai.LLM):
    """livekit-plugins-openai's LLM on the gateway, as one connection or pool.

    ``temperature`` and ``max_tokens`` are the defaults of every call (``None``: the
    connection's own, which the gateway applies); a call's ``extra_kwargs`` override them.
    ``timeout`` (seconds) bounds each call unless the caller passes ``conn_options``.
    Other keyword arguments go to the plugin's ``LLM`` (``top_p``, ``tool_choice``, ...).
    """

    def __init__(
        self,
        connection: Connection,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        **plugin_options: Any,
    ) -> None:
        self.connection = connection
        self._timeout = timeout if timeout is not None else DEFAULT_API_CONNECT_OPTIONS.timeout
        self._gateway_client = openai.AsyncClient(
            base_url=connection.manager.gateway_url,
            api_key=connection.manager.token or NO_TOKEN,
            default_headers={"X-UMP-Source": SOURCE},
            max_retries=0,  # the gateway retries and fails over itself
            timeout=self._timeout,
            http_client=openai.DefaultAsyncHttpxClient(
                event_hooks={"request": [_drop_livekit_credential]}
            ),
        )
        super().__init__(model=connection.model, client=self._gateway_client, **plugin_options)
        self._defaults: dict[str, Any] = {}
        if temperature is not None:
            self._defaults["temperature"] = temperature
        if max_tokens is not None:
            self._defaults["max_completion_tokens"] = max_tokens
        self._conn_options = APIConnectOptions(timeout=self._timeout)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        response_format: NotGivenOr[Any] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> lk_openai.LLMStream:
        extra = self._defaults | (extra_kwargs if is_given(extra_kwargs) else {})
        if conn_options is DEFAULT_API_CONNECT_OPTIONS:
            conn_options = self._conn_options
        return super().chat(
            chat_ctx=chat_ctx,
            tools=tools,
            conn_options=conn_options,
            parallel_tool_calls=parallel_tool_calls,
            tool_choice=tool_choice,
            response_format=response_format,
            extra_kwargs=extra,
        )

    async def generate(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system: str | None = None,
    ) -> llm.CollectedResponse:
        """One answer to ``prompt`` (after ``system``, if given): ``.text``, ``.usage``.

        ``None`` leaves a setting at the instance's default. The plugin's own stream makes the
        call, without LiveKit's retries (the gateway retries and fails over). Failures raise the
        SDK's errors (``GatewayError``, ``IntegrationNotEnabled``, ``ServerUnreachable``, ...).
        """
        ctx = llm.ChatContext.empty()
        if system is not None:
            ctx.add_message(role="system", content=system)
        ctx.add_message(role="user", content=prompt)
        extra: dict[str, Any] = {}
        if temperature is not None:
            extra["temperature"] = temperature
        if max_tokens is not None:
            extra["max_completion_tokens"] = max_tokens
        options = APIConnectOptions(max_retry=0, timeout=self._timeout)
        stream = self.chat(chat_ctx=ctx, conn_options=options, extra_kwargs=extra)
        manager = self.connection.manager
        with manager.translated_errors(self.connection):
            try:
                return await stream.collect()
            except APITimeoutError:
                raise GatewayError(
                    f"{self.connection.name!r} did not answer within {self._timeout:g} s"
                    " (create_llm_instance(timeout=...) sets the limit)",
                    code="timeout",
                ) from None
            except APIStatusError as exc:
                manager.raise_for(exc.status_code, exc.body, GatewayError)
            except APIConnectionError as exc:
                if isinstance(exc.__cause__, openai.APIError):
                    raise exc.__cause__ from None  # for translated_errors
                raise

    async def __aenter__(self) -> Self:
        return self

    async def aclose(self) -> None:
        await super().aclose()
        await self._gateway_client.close()


def create_llm_instance(connection: Connection, **overrides: Any) -> GatewayLLM:
    """A LiveKit LLM calling the gateway as ``connection`` (source ``livekit``): its
    temperature, max tokens and timeout unless ``overrides`` say otherwise; other overrides
    go to livekit-plugins-openai's ``LLM``."""
    settings: dict[str, Any] = {
        "temperature": connection.temperature,
        "max_tokens": connection.max_tokens,
        "timeout": connection.timeout,
    }
    return GatewayLLM(connection, **(settings | overrides))
