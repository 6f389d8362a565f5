"""The running server: every part it owns, started in one order and stopped in the reverse.

``Runtime.open`` opens the service (database, migrations, server key, registry: ``service.py``)
and builds the rest without starting anything; ``start`` runs the steps below top to bottom,
``stop`` bottom to top. Each step's place says why it is there:

    service            closed last: every other part uses its database and HTTP session
    tokens             the API tokens in memory: who a webhook's owner is, who a request is
    webhooks           subscribed before the bus starts; stopped after the bus has handed
                       over the events still queued, then given a grace period to deliver
    events             the bus: stopped once nothing publishes any more
    unfinished tests   at start-up no test runs, so none can still be "testing"
    limiter            closed once no request can reserve (Redis, when configured)
    directory          the gateway's snapshot of the connections, refreshed in the background
    usage recorder     stopped after the gateway's last call: writes (or spills) what is left
    health monitor     only when ``UMP_HEALTH_MONITOR`` is on; cancels its probes on stop
    spot reconciler    follows the AWS spot instances (``compute/``); idle, and boto3 never
                       loaded, while no region is configured and no instance is recorded
    spend              month-to-date spend per connection, for budgets; refreshed every minute
    audit retention    prunes audit rows past ``UMP_AUDIT_RETENTION_DAYS``, at start and hourly

The API's open streams end before ``stop`` (their usage is recorded), see ``api/app.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from ump_llm_connections.audit import AuditLog
from ump_llm_connections.background import periodic
from ump_llm_connections.clock import utcnow
from ump_llm_connections.compute.lifecycle import SpotSettings
from ump_llm_connections.compute.reconciler import SpotReconciler
from ump_llm_connections.compute.spot import SpotService
from ump_llm_connections.config import Settings
from ump_llm_connections.gateway.core import Gateway
from ump_llm_connections.gateway.directory import Directory
from ump_llm_connections.gateway.limits import create_limiter
from ump_llm_connections.gateway.outliers import Outliers
from ump_llm_connections.gateway.spill import SpillFile
from ump_llm_connections.gateway.usage import UsageRecorder
from ump_llm_connections.health import ConnectionTester
from ump_llm_connections.metrics import Metrics
from ump_llm_connections.monitor import HealthMonitor
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry
from ump_llm_connections.reports import UsageReports
from ump_llm_connections.service import Service, open_service
from ump_llm_connections.store.audit import AuditStore
from ump_llm_connections.store.engine import redacted_url
from ump_llm_connections.store.health import SPOT_LOCK, HealthStore, MonitorLease
from ump_llm_connections.store.spot import SpotStore
from ump_llm_connections.store.tokens import TokenStore
from ump_llm_connections.store.usage import UsageStore
from ump_llm_connections.store.usage_report import UsageGroups
from ump_llm_connections.store.webhooks import WebhookStore
from ump_llm_connections.tokens import FailureThrottle, TokenCache, TokenService
from ump_llm_connections.webhooks import WebhookDispatcher, WebhookService

__all__ = ["AUDIT_PRUNE_S", "SPEND_REFRESH_S", "Runtime", "Step"]

log = logging.getLogger(__name__)

SPEND_REFRESH_S = 60.0
AUDIT_PRUNE_S = 3600.0


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """One part's start and stop (either may do nothing)."""

    name: str
    start: Callable[[], Awaitable[None]] = _nothing
    stop: Callable[[], Awaitable[None]] = _nothing


class Runtime:
    def __init__(self, settings: Settings, service: Service) -> None:
        self.settings = settings
        self.service = service
        token_store = TokenStore(service.sessions)
        self.token_cache = TokenCache(
            token_store, refresh_s=settings.token_refresh_s or settings.gateway_refresh_s
        )
        self.tokens = TokenService(token_store, self.token_cache)
        self.throttle = FailureThrottle()
        self.audit = AuditLog(
            AuditStore(service.sessions), retention=timedelta(days=settings.audit_retention_days)
        )
        self._audit_retention = periodic(
            "audit log retention", self.audit.prune, AUDIT_PRUNE_S, first_now=True
        )
        webhook_store = WebhookStore(service.sessions)
        dispatcher = WebhookDispatcher(
            webhook_store,
            service.keys,
            service.http,
            backoff_s=settings.webhook_backoff_s,
            owners=self.token_cache.principal,
        )
        self.webhooks = WebhookService(
            webhook_store,
            service.keys,
            dispatcher,
            upstream_allowlist=settings.upstream_allowlist,
        )
        usage_store = UsageStore(service.sessions)
        self.usage = UsageReports(
            usage_store, UsageGroups(service.sessions), service.registry, service.pools
        )
        self.recorder = UsageRecorder(
            usage_store, SpillFile(settings.spill_file), interval_s=settings.usage_flush_s
        )
        self.directory = Directory(
            service.registry, service.pools, service.http, refresh_s=settings.gateway_refresh_s
        )
        self.limiter = create_limiter(settings.redis_url, prefix=settings.redis_prefix)
        self.metrics = Metrics()
        self.metrics.watch_health(
            lambda: [
                (r.name, r.connection_type, r.is_active, r.status) for r in self.directory.routes()
            ]
        )
        self.gateway = Gateway(
            self.directory, self.recorder, self.limiter, metrics=self.metrics, events=service.events
        )
        self.monitor = HealthMonitor(
            service.registry,
            service.tester,
            HealthStore(service.sessions),
            service.http,
            MonitorLease(service.engine),
            interval_s=settings.health_interval_s,
            concurrency=settings.health_concurrency,
            retention=timedelta(days=settings.health_retention_days),
        )
        self.gateway.outliers = Outliers(
            threshold=settings.health_failure_threshold, on_trip=self.monitor.suspect
        )
        self.spot = SpotService(
            SpotStore(service.sessions),
            service.registry,
            service.events,
            SpotSettings(
                public_url=settings.public_url,
                lease_s=settings.spot_lease_s,
                endpoint_template=settings.spot_endpoint_template,
            ),
        )
        self.reconciler = SpotReconciler(
            self.spot,
            service.tester,
            service.http,
            MonitorLease(service.engine, SPOT_LOCK),
            interval_s=settings.spot_reconcile_s,
            regions=settings.spot_regions,
        )
        self._spend = periodic("month-to-date spend refresh", self._load_spend, SPEND_REFRESH_S)
        self.steps = self._steps()
        self._started: list[Step] = []

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Open the service and build the parts on it; nothing runs until ``start``."""
        service = await open_service(settings)
        try:
            return cls(settings, service)
        except BaseException:
            await service.close()
            raise

    @property
    def registry(self) -> Registry:
        return self.service.registry

    @property
    def pools(self) -> PoolService:
        return self.service.pools

    @property
    def tester(self) -> ConnectionTester:
        return self.service.tester

    def _steps(self) -> list[Step]:
        events = self.service.events
        steps = [
            Step("service", stop=self.service.close),
            Step("tokens", self.token_cache.start, self.token_cache.stop),
            Step("webhooks", lambda: self.webhooks.start(events), self.webhooks.stop),
            Step("events", events.start, events.stop),
            Step("unfinished tests", self.service.tester.forget_unfinished),
            Step("limiter", stop=self.limiter.close),
            Step("directory", self.directory.start, self.directory.stop),
            Step("usage recorder", self.recorder.start, self.recorder.stop),
        ]
        if self.settings.health_monitor:
            steps.append(Step("health monitor", self.monitor.start, self.monitor.stop))
        steps.append(Step("spot reconciler", self.reconciler.start, self.reconciler.stop))
        steps.append(Step("spend", self._start_spend, self._spend.stop))
        steps.append(
            Step("audit retention", self._start_audit_retention, self._audit_retention.stop)
        )
        return steps

    async def start(self) -> None:
        """Start every part in order; if one fails, stop those already started, and raise."""
        for step in self.steps:
            try:
                await step.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(step)
        log.info("serving the registry from %s", redacted_url(self.settings.resolved_database_url))

    async def stop(self) -> None:
        """Stop the started parts in reverse order; one that fails to stop is logged and the
        others still stop."""
        while self._started:
            step = self._started.pop()
            try:
                await step.stop()
            except Exception:
                log.exception("stopping %s failed", step.name)

    def abandon(self) -> None:
        """A forced exit skips ``stop``: spill the usage not stored yet, for the next start."""
        self.recorder.abandon()

    async def _start_spend(self) -> None:
        await self._load_spend()
        self._spend.start()

    async def _start_audit_retention(self) -> None:
        self._audit_retention.start()

    async def _load_spend(self) -> None:
        """Month-to-date spend per connection, for budgets (other replicas' spend included)."""
        now = utcnow()
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        self.gateway.spend.reset(now.strftime("%Y-%m"), await self.usage.costs_since(month_start))
