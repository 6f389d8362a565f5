"""Opening the service: engine, migrations, server key and registry, in that order.

Shared by the server's runtime (``runtime.py``) and the CLI, so both refuse the same bad
configurations. The CLI uses these parts alone; the server adds the gateway and the background
work on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ump_llm_connections.config import Settings
from ump_llm_connections.events import EventBus
from ump_llm_connections.health import ConnectionTester, Thresholds
from ump_llm_connections.pools import PoolService
from ump_llm_connections.providers.target import create_http_session
from ump_llm_connections.registry import Registry
from ump_llm_connections.secrets import KeyBox, key_id_of, load_keybox
from ump_llm_connections.store import migrate
from ump_llm_connections.store.connections import ConnectionStore
from ump_llm_connections.store.engine import Engine, Sessions, create_engine, session_factory
from ump_llm_connections.store.health import HealthStore
from ump_llm_connections.store.pools import PoolStore
from ump_llm_connections.store.rotation import RotationStore


@dataclass
class Service:
    engine: Engine
    sessions: Sessions
    registry: Registry
    pools: PoolService
    keys: KeyBox
    events: EventBus
    tester: ConnectionTester
    http: aiohttp.ClientSession

    async def close(self) -> None:
        await self.http.close()
        await self.engine.dispose()


async def open_service(settings: Settings, *, run_migrations: bool = True) -> Service:
    """Connect, migrate, load (or on first run create) the server key and check it fits the DB.

    A key file is created only when the database holds no encrypted key yet: a lost key file is
    an error to report, not a reason to start over with a new key.
    """
    engine = create_engine(settings.resolved_database_url)
    events = EventBus()  # started by the server; the CLI never starts it
    try:
        if run_migrations:
            await migrate.upgrade(engine)
        sessions = session_factory(engine)
        store = ConnectionStore(sessions, dialect=engine.dialect.name)
        keys = load_keybox(
            secret_key=settings.secret_key,
            key_file=settings.key_file,
            create=False,
            previous_keys=settings.previous_secret_keys,
        )
        webhook_keys = [key_id_of(w.secret) for w in await RotationStore(sessions).webhooks()]
        await Registry(store, keys, events).check_keys(webhook_keys)
        if keys is None:
            keys = load_keybox(secret_key=None, key_file=settings.key_file, create=True)
        assert keys is not None
        registry = Registry(
            store,
            keys,
            events,
            max_upstream_bytes=settings.max_upstream_bytes,
            upstream_allowlist=settings.upstream_allowlist,
        )
        await registry.seal_headers()
    except BaseException:
        await engine.dispose()
        raise
    http = create_http_session()
    thresholds = Thresholds(
        failures=settings.health_failure_threshold,
        latency_ms=settings.health_latency_threshold_ms,
        error_rate=settings.health_error_rate_threshold,
    )
    tester = ConnectionTester(registry, HealthStore(sessions), http, events, thresholds)
    return Service(
        engine=engine,
        sessions=sessions,
        registry=registry,
        pools=PoolService(PoolStore(sessions), events),
        keys=keys,
        events=events,
        tester=tester,
        http=http,
    )
