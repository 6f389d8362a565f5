"""The guide's connection presets, applied as connections plus a pool.

A preset never invents a key: the ones it needs are asked for, and applying fails (creating
nothing) until each is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import ValidationError

from ump_llm_connections.domain import (
    ConnectionCreate,
    ConnectionRead,
    ConnectionType,
    PoolCreate,
    PoolMember,
    PoolStrategy,
    PresetApplied,
    PresetApply,
    PresetConnectionInfo,
    PresetInfo,
    PresetSkipped,
    invalid_input,
)
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal
from ump_llm_connections.errors import Conflict, InvalidInput, NotFound, UmpError
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Template:
    key: str  # what api_keys calls it
    name: str
    connection_type: ConnectionType
    model_name: str
    base_url: str | None = None
    needs_key: bool = False
    priority: int = 0
    aws: bool = False  # bedrock: a region, and a key id with its secret or the server's chain


@dataclass(frozen=True, slots=True)
class Preset:
    slug: str
    name: str
    description: str
    strategy: PoolStrategy
    connections: tuple[Template, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def info(self) -> PresetInfo:
        return PresetInfo(
            slug=self.slug,
            name=self.name,
            description=self.description,
            strategy=self.strategy,
            connections=[
                PresetConnectionInfo(
                    key=t.key,
                    name=t.name,
                    connection_type=t.connection_type,
                    model_name=t.model_name,
                    base_url=t.base_url,
                    needs_api_key=t.needs_key,
                    priority=t.priority,
                    needs_aws_region=t.aws,
                )
                for t in self.connections
            ],
            skipped=[PresetSkipped(name=n, reason=r) for n, r in self.skipped],
        )


PRESETS: tuple[Preset, ...] = (
    Preset(
        slug="local-dev-stack",
        name="Local Dev Stack",
        description="Ollama first, llama.cpp as the fallback: both on this machine, no keys.",
        strategy=PoolStrategy.priority,
        connections=(
            Template(
                "ollama",
                "Local Ollama",
                ConnectionType.local,
                "llama3.2:3b",
                "http://localhost:11434",
                priority=1,
            ),
            Template(
                "llamacpp",
                "Local llama.cpp",
                ConnectionType.local,
                "default",
                "http://localhost:8080",
                priority=2,
            ),
        ),
    ),
    Preset(
        slug="production-stack",
        name="Production Stack",
        description="Claude primary, GPT-4 fallback, Groq Llama as the cost-effective last "
        "resort, in that order.",
        strategy=PoolStrategy.priority,
        connections=(
            Template(
                "anthropic",
                "Claude Sonnet",
                ConnectionType.anthropic,
                "claude-3-5-sonnet-20241022",
                needs_key=True,
                priority=1,
            ),
            Template(
                "openai", "OpenAI GPT-4", ConnectionType.openai, "gpt-4", needs_key=True, priority=2
            ),
            Template(
                "groq",
                "Groq Llama",
                ConnectionType.groq,
                "llama-3.1-70b-versatile",
                needs_key=True,
                priority=3,
            ),
        ),
    ),
    Preset(
        slug="multi-cloud",
        name="Multi-Cloud",
        description="OpenAI, Anthropic, Google and AWS Bedrock side by side, load balanced.",
        strategy=PoolStrategy.weighted,
        connections=(
            Template("openai", "OpenAI GPT-4", ConnectionType.openai, "gpt-4", needs_key=True),
            Template(
                "anthropic",
                "Anthropic Claude",
                ConnectionType.anthropic,
                "claude-3-5-sonnet-20241022",
                needs_key=True,
            ),
            Template(
                "google", "Google Gemini", ConnectionType.google, "gemini-pro", needs_key=True
            ),
            Template(
                "bedrock",
                "AWS Bedrock",
                ConnectionType.bedrock,
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                aws=True,
            ),
        ),
    ),
)


def find(ref: str) -> Preset:
    wanted = ref.strip().lower()
    for preset in PRESETS:
        if wanted in (preset.slug, preset.name.lower()):
            return preset
    names = ", ".join(p.slug for p in PRESETS)
    raise NotFound(f"no preset '{ref[:80]}': the presets are {names}", field="name")


async def apply(
    preset: Preset,
    body: PresetApply,
    registry: Registry,
    pools: PoolService,
    *,
    caller: Principal = OPEN_ACCESS,
) -> PresetApplied:
    """Create the preset's connections and its pool, or nothing at all."""
    keys = dict(body.api_keys)
    known = {t.key for t in preset.connections}
    for key in sorted(keys):
        if key not in known:
            raise InvalidInput(
                f"'{key}' is not a connection of {preset.name}: it has {', '.join(sorted(known))}",
                field=f"api_keys.{key}",
            )
    wanted: list[ConnectionCreate] = []
    for t in preset.connections:
        if t.needs_key and not keys.get(t.key):
            raise InvalidInput(
                f"api_keys.{t.key} is required: the API key for {t.name} ({t.connection_type})",
                field=f"api_keys.{t.key}",
            )
        fields = {
            "name": f"{body.prefix}{t.name}",
            "connection_type": t.connection_type,
            "model_name": t.model_name,
            "base_url": t.base_url,
            "api_key": keys.get(t.key),
            **body.flags(),
        }
        if t.aws:
            fields.update(_aws_fields(t, body, has_key=bool(keys.get(t.key))))
        try:
            wanted.append(
                ConnectionCreate.model_validate({k: v for k, v in fields.items() if v is not None})
            )
        except ValidationError as exc:
            raise invalid_input(exc) from None
    pool_name = body.pool_name or f"{body.prefix}{preset.name}"
    for data in wanted:
        if await _exists(registry, data.name):
            raise Conflict(
                f"a connection or pool named '{data.name}' already exists "
                "(set prefix to apply the preset again)",
                field="prefix",
            )
    created: list[ConnectionRead] = []
    try:
        for data in wanted:
            created.append(await registry.create(data, caller=caller))
        pool = await pools.create(
            PoolCreate(
                name=pool_name,
                description=preset.description,
                strategy=preset.strategy,
                members=[
                    PoolMember(connection_id=c.id, priority=t.priority)
                    for c, t in zip(created, preset.connections, strict=True)
                ],
            ),
            caller=caller,
        )
    except UmpError:
        for connection in created:  # all or nothing
            await registry.delete(str(connection.id))
        raise
    log.info("applied preset %r: pool %r with %d connections", preset.name, pool.name, len(created))
    skipped = [PresetSkipped(name=n, reason=r) for n, r in preset.skipped]
    return PresetApplied(pool=pool, connections=created, skipped=skipped)


def _aws_fields(t: Template, body: PresetApply, *, has_key: bool) -> dict[str, str | None]:
    """An AWS connection's region and key id, checked under the names the body gives them."""
    if not body.aws_region:
        raise InvalidInput(
            f"aws_region is required: the AWS region of {t.name} (e.g. us-east-1)",
            field="aws_region",
        )
    if has_key and not body.aws_access_key_id:
        raise InvalidInput(
            f"aws_access_key_id is required with api_keys.{t.key} (the AWS secret access key), "
            "or leave both out to use the server's AWS credentials",
            field="aws_access_key_id",
        )
    if body.aws_access_key_id and not has_key:
        raise InvalidInput(
            f"api_keys.{t.key} is required with aws_access_key_id: the AWS secret access key "
            f"for {t.name}",
            field=f"api_keys.{t.key}",
        )
    return {"aws_region": body.aws_region, "aws_access_key_id": body.aws_access_key_id}


async def _exists(registry: Registry, name: str) -> bool:
    """Whether the name is taken (by anyone's connection or pool: names are global)."""
    try:
        await registry.get(name)
    except NotFound:
        return False
    return True
