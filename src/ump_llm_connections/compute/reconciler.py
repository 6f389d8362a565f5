"""The spot reconciler: every ``UMP_SPOT_RECONCILE_S``, on one replica at a time (an advisory
lock of its own, like the health monitor's), it

1. describes the instances tagged ``ump:managed=true`` in the regions in use
   (``UMP_SPOT_REGIONS`` and those of the instances it knows, till they are terminated), and
   moves each one's state and connection with what EC2 says; a running one gets its
   ``base_url`` from ``UMP_SPOT_ENDPOINT_TEMPLATE`` and a renewed lease;
2. adopts a tagged instance it does not know (launched elsewhere) from its tags; an untagged
   instance is never looked at;
3. takes out of rotation every instance whose lease lapsed (no heartbeat, not seen running);
4. probes the ``starting`` ones with a one-token prompt until the model answers (503 or a
   refused connection while vLLM loads keeps them ``starting``), then activates them.

With no region configured and no instance recorded it does nothing, and boto3 is never loaded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

import aiohttp

from ump_llm_connections.background import periodic
from ump_llm_connections.clock import as_utc, utcnow
from ump_llm_connections.compute.lifecycle import PLACEHOLDER_URL
from ump_llm_connections.compute.spot import SpotService
from ump_llm_connections.domain import ApiFormat, ConnectionCreate, ConnectionType
from ump_llm_connections.domain.access import OPEN_ACCESS
from ump_llm_connections.domain.spot import (
    MODEL_TAG,
    PORT_TAG,
    SPOT_ID_TAG,
    Observed,
    SpotState,
    endpoint_url,
)
from ump_llm_connections.errors import Conflict, UmpError
from ump_llm_connections.health import ConnectionTester, probe
from ump_llm_connections.store.health import MonitorLease
from ump_llm_connections.store.spot import ConnectionChange
from ump_llm_connections.store.tables import SpotInstanceRow

__all__ = ["SpotReconciler"]

log = logging.getLogger(__name__)

WATCHED = [s.value for s in SpotState if s is not SpotState.terminated]  # described till gone
LEASED = [SpotState.pending.value, SpotState.starting.value, SpotState.ready.value]
PROBE_TIMEOUT_S = 10.0
GONE = frozenset({"shutting-down", "terminated"})


class SpotReconciler:
    def __init__(
        self,
        service: SpotService,
        tester: ConnectionTester,
        http: aiohttp.ClientSession,
        lease: MonitorLease,
        *,
        interval_s: float,
        regions: list[str],
        concurrency: int = 8,
    ) -> None:
        self._service = service
        self._tester = tester
        self._http = http
        self._lease = lease
        self._regions = list(regions)
        self._limit = asyncio.Semaphore(concurrency)
        self._task = periodic("spot reconciler", self.tick, interval_s, first_now=True)
        self._failing: dict[str, str] = {}  # region -> the last describe error logged
        self._skipped: set[str] = set()  # tagged instances that cannot be adopted (logged)

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        await self._lease.release()

    async def tick(self) -> None:
        store = self._service.store
        regions = sorted(set(self._regions) | set(await store.regions(WATCHED)))
        if not regions or not await self._lease.hold():
            return
        for region in regions:
            try:
                observed = await self._service.ec2.describe_managed(region)
            except UmpError as exc:
                if self._failing.get(region) != exc.message:
                    log.warning("spot reconciler: cannot describe %s: %s", region, exc.message)
                    self._failing[region] = exc.message
                continue
            self._failing.pop(region, None)
            for found in observed:
                try:
                    await self._observe(found)
                except UmpError as exc:
                    log.warning("spot instance %s: %s", found.instance_id, exc.message)
        await self._expire()
        starting = await store.live([SpotState.starting.value])
        await asyncio.gather(*(self._probe(row) for row in starting if row.connection_id))

    async def _observe(self, found: Observed) -> None:
        service = self._service
        row = await service.store.by_instance(found.instance_id)
        if row is None:
            if found.state in GONE or found.tags.get(SPOT_ID_TAG) in service.launching:
                return
            row = await self._adopt(found)
            if row is None:
                return
        if row.state == SpotState.terminated:
            return
        running = found.state == "running"
        now = utcnow()

        def edit(r: SpotInstanceRow) -> None:
            r.public_ip, r.private_ip = found.public_ip, found.private_ip
            if found.launch_time is not None:
                r.launch_time = found.launch_time
            if running:
                r.lease_expires_at = now + timedelta(seconds=service.settings.lease_s)

        url = None
        if running:
            url = endpoint_url(
                service.settings.endpoint_template,
                public_ip=found.public_ip,
                private_ip=found.private_ip,
                port=row.port,
            )
        reason = "running" if running else f"instance {found.state}"
        if found.reason and not running:
            reason += f": {found.reason}"
        await service.move(row.id, found.state, reason[:500], edit, url)

    async def _adopt(self, found: Observed) -> SpotInstanceRow | None:
        """Record a tagged instance launched elsewhere, with a connection made from its tags."""
        service = self._service
        model = found.tags.get(MODEL_TAG, "").strip()
        port_tag = found.tags.get(PORT_TAG, "8000")
        port = int(port_tag) if port_tag.isdigit() and 0 < int(port_tag) < 65536 else None
        if not model or port is None:
            if found.instance_id not in self._skipped:
                self._skipped.add(found.instance_id)
                log.warning(
                    "spot instance %s is tagged ump:managed=true but has no valid %s/%s tag: "
                    "not adopted",
                    found.instance_id,
                    MODEL_TAG,
                    PORT_TAG,
                )
            return None
        name = (found.tags.get("Name") or "").strip() or f"spot-{found.instance_id}"
        connection = None
        for candidate in (name, f"{name[:150]}-{found.instance_id}"):
            try:
                data = ConnectionCreate(
                    name=candidate,
                    connection_type=ConnectionType.aws_spot,
                    api_format=ApiFormat.openai,
                    base_url=PLACEHOLDER_URL,
                    model_name=model,
                    is_active=False,
                    aws_region=found.region,
                )
                connection = await service.registry.create(data, caller=OPEN_ACCESS)
                break
            except (Conflict, ValueError):
                continue
        if connection is None:
            return None
        now = utcnow()
        row = SpotInstanceRow(
            aws_instance_id=found.instance_id,
            region=found.region,
            name=connection.name,
            instance_type=found.instance_type or "unknown",
            image_id=found.image_id,
            model_name=model,
            port=port,
            spot_price=await service.ec2.spot_price(found.region, found.instance_type, None),
            state=SpotState.pending.value,
            state_reason="adopted: tagged ump:managed=true, launched elsewhere",
            launch_time=found.launch_time,
            connection_id=connection.id,
            lease_expires_at=now + timedelta(seconds=service.settings.lease_s),
            adopted=True,
            created_at=now,
            updated_at=now,
        )
        try:
            moved = await service.store.add(row, ConnectionChange(False, "testing"))
        except Conflict:  # another replica recorded it first
            await service.registry.delete(str(connection.id))
            return await service.store.by_instance(found.instance_id)
        log.info("adopted spot instance %s (%s) as %r", found.instance_id, found.region, row.name)
        return moved.row

    async def _expire(self) -> None:
        now = utcnow()
        lease_s = self._service.settings.lease_s
        for row in await self._service.store.live(LEASED):
            if row.lease_expires_at is not None and as_utc(row.lease_expires_at) < now:
                await self._service.expire(
                    row.id, f"lease expired: no heartbeat and not seen running for {lease_s:g} s"
                )

    async def _probe(self, row: SpotInstanceRow) -> None:
        """Ask the model for one token: it answers, and the connection serves."""
        service = self._service
        async with self._limit:
            try:
                connection, target = await service.registry.target(str(row.connection_id))
            except UmpError:
                return
            if connection.base_url == PLACEHOLDER_URL:
                return
            quick = replace(target, timeout=min(target.timeout, PROBE_TIMEOUT_S), max_retries=0)
            found = await probe(quick, self._http, "ping", 1, None)
            if found.error is None:
                moved = await service.ready(row.id)
                if moved and moved.connection and moved.row.state == SpotState.ready.value:
                    await self._tester.apply(moved.connection.id, "scheduled", found, enforce=False)
                return
            reason = f"waiting for the model: {found.error.message}"[:500]
            if row.state_reason != reason or connection.status != "testing":
                await service.note(row.id, reason)
