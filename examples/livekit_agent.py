"""A LiveKit voice agent whose LLM is a connection managed by ump-llm-connections.

It answers in a LiveKit room with the first active connection enabled for LiveKit ("Use in
LiveKit"), called through the server's gateway (so its usage is recorded as ``livekit``).

Run it (a LiveKit server, and LiveKit Cloud credentials for the STT and TTS below):

    export UMP_AI_API_URL=http://localhost:8002/api   # the default; UMP_API_TOKEN if tokens are on
    export LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    python examples/livekit_agent.py dev       # or `console` to talk to it from this terminal

Why it differs from the guide's "LiveKit Agent Example": that one was written for
livekit-agents 0.x, whose ``VoiceAssistant`` is gone in 1.x. Today an ``AgentSession`` holds
the STT, LLM and TTS, an ``Agent`` holds the instructions (and tools), ``session.start(agent,
room=ctx.room)`` joins the room, and the worker is an ``AgentServer`` whose ``rtc_session`` is the
entrypoint. The STT and TTS are LiveKit Inference models (``STT_MODEL``, ``TTS_MODEL``); any
LiveKit STT/TTS plugin can take their place. ``build_session`` and ``livekit_connection`` hold
everything but the room, so the tests drive them in LiveKit's text mode (``session.run``).
"""

from __future__ import annotations

from typing import Any

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli

from ump_llm_connections import Connection, ConnectionManager

STT_MODEL = "deepgram/nova-3"
TTS_MODEL = "cartesia/sonic-3"
INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer briefly, in plain sentences: no lists, "
    "no markdown, no emojis."
)


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)


async def livekit_connection(manager: ConnectionManager) -> Connection:
    """The first active connection enabled for LiveKit."""
    connections = await manager.get_connections(use_in_livekit=True, is_active=True)
    if not connections:
        raise RuntimeError(
            f"no active connection at {manager.api_url} is enabled for LiveKit:"
            " turn on 'Use in LiveKit' for one"
        )
    return connections[0]


def build_session(connection: Connection, **voice: Any) -> AgentSession[None]:
    """A session answering with ``connection``; ``voice`` adds the room's parts (``stt``,
    ``tts``, ``vad``, ...). Without them it is text only, as in LiveKit's test harness."""
    return AgentSession(llm=connection.create_llm_instance(), **voice)


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    async with ConnectionManager() as manager:
        connection = await livekit_connection(manager)
    session = build_session(connection, stt=STT_MODEL, tts=TTS_MODEL)
    await session.start(agent=Assistant(), room=ctx.room)
    await ctx.connect()


if __name__ == "__main__":
    cli.run_app(server)
