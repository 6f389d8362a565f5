"""How a spot instance's state changes, and its connection's with it: ``SpotLifecycle`` is the
one place that moves them (the API's service, ``spot.py``, and the reconciler both call it), in
one transaction, with the events and the gateway told at once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from ump_llm_connections.clock import utcnow
from ump_llm_connections.compute.aws import Ec2
from ump_llm_connections.domain.access import Principal
from ump_llm_connections.domain.spot import SpotInstanceRead, SpotState, state_after
from ump_llm_connections.errors import NotFound, UmpError
from ump_llm_connections.events import EventBus
from ump_llm_connections.registry import Registry
from ump_llm_connections.store.spot import ConnectionChange, Moved, SpotStore
from ump_llm_connections.store.tables import SpotInstanceRow

__all__ = ["PLACEHOLDER_URL", "SpotLifecycle", "SpotSettings", "connection_change"]

log = logging.getLogger(__name__)

PLACEHOLDER_URL = "http://instance-pending.invalid/v1"

REASONS = {
    SpotState.pending: "spot_pending",
    SpotState.starting: "spot_starting",
    SpotState.ready: "spot_ready",
    SpotState.interrupted: "spot_interrupted",
    SpotState.stopping: "instance_stopping",
    SpotState.stopped: "instance_stopped",
    SpotState.shutting_down: "instance_shutting_down",
    SpotState.terminated: "instance_terminated",
    SpotState.expired: "lease_expired",
}


ENDED = frozenset({SpotState.stopped, SpotState.shutting_down, SpotState.terminated})


@dataclass(frozen=True, slots=True)
class SpotSettings:
    public_url: str | None
    lease_s: float
    endpoint_template: str


def connection_change(old: SpotState, new: SpotState, reason: str) -> ConnectionChange | None:
    """What a move from ``old`` to ``new`` does to the instance's connection: active only while
    ``ready``; ``testing`` while it may still come up; off, with the reason, once it is down."""
    if new is SpotState.ready:
        return (
            None if old is SpotState.ready else ConnectionChange(True, "active", clear_error=True)
        )
    if new in (SpotState.pending, SpotState.starting):
        return ConnectionChange(False, "testing")
    return ConnectionChange(False, "inactive", last_error=reason)


class SpotLifecycle:
    def __init__(
        self,
        store: SpotStore,
        registry: Registry,
        events: EventBus,
        settings: SpotSettings,
        ec2: Ec2 | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self._events = events
        self.settings = settings
        self.ec2 = ec2 or Ec2()
        self.launching: set[str] = set()  # spot ids between run_instances and their row

    # -- state changes ------------------------------------------------------------------------

    async def move(
        self,
        spot_id: uuid.UUID,
        ec2_state: str,
        reason: str,
        edit: Callable[[SpotInstanceRow], None] | None = None,
        base_url: str | None = None,
    ) -> Moved | None:
        """EC2 says the instance is ``ec2_state``: our state follows (``state_after``), and the
        connection with it. ``edit`` changes other fields in the same transaction; ``base_url``
        is where the connection now points."""
        return await self._set(
            spot_id, lambda old: state_after(old, ec2_state), reason, edit, base_url
        )

    async def note(self, spot_id: uuid.UUID, reason: str) -> None:
        """Say why an instance stays where it is (a model still loading); the connection stays
        out of rotation and ``testing`` (a restart's clean-up may have made it ``unknown``)."""

        def apply(row: SpotInstanceRow) -> ConnectionChange:
            row.state_reason = reason
            return ConnectionChange(False, "testing")

        moved = await self.store.change(spot_id, apply)
        if moved is not None:
            old = SpotState(moved.row.state)
            await self._announce(moved, old, old)

    async def interrupt(self, spot_id: uuid.UUID, reason: str) -> Moved | None:
        def new(old: SpotState) -> SpotState:
            return SpotState.interrupted if old.live else old

        return await self._set(spot_id, new, reason)

    async def ready(self, spot_id: uuid.UUID) -> Moved | None:
        def new(old: SpotState) -> SpotState:
            return SpotState.ready if old is SpotState.starting else old

        return await self._set(spot_id, new, "the model answers")

    async def expire(self, spot_id: uuid.UUID, reason: str) -> Moved | None:
        def new(old: SpotState) -> SpotState:
            return SpotState.expired if old.live else old

        return await self._set(spot_id, new, reason)

    async def renew(self, spot_id: uuid.UUID, *, heartbeat: bool = False) -> Moved | None:
        """Renew the lease; an instance whose lease had lapsed is ``starting`` again (the
        reconciler probes it before it serves)."""
        now = utcnow()

        def edit(row: SpotInstanceRow) -> None:
            row.lease_expires_at = now + timedelta(seconds=self.settings.lease_s)
            if heartbeat:
                row.last_heartbeat_at = now

        def new(old: SpotState) -> SpotState:
            return SpotState.starting if old is SpotState.expired else old

        return await self._set(spot_id, new, "heard from again", edit)

    async def _set(
        self,
        spot_id: uuid.UUID,
        new_state: Callable[[SpotState], SpotState],
        reason: str,
        edit: Callable[[SpotInstanceRow], None] | None = None,
        base_url: str | None = None,
    ) -> Moved | None:
        before: list[SpotState] = []

        def apply(row: SpotInstanceRow) -> ConnectionChange | None:
            old = SpotState(row.state)
            new = new_state(old)
            before.append(old)
            if edit is not None:
                edit(row)
            change = None
            if new is not old:
                row.state, row.state_reason = new.value, reason
                if new in ENDED and row.ended_at is None:
                    row.ended_at = utcnow()  # the hours (and the cost) stop here
                elif new.live:
                    row.ended_at = None
                change = connection_change(old, new, reason)
            if base_url is not None:
                change = replace(change or ConnectionChange(), base_url=base_url)
            return change

        moved = await self.store.change(spot_id, apply)
        if moved is not None:
            await self._announce(moved, before[0], SpotState(moved.row.state))
        return moved

    async def _announce(self, moved: Moved, old: SpotState, new: SpotState) -> None:
        """Events for what the move did to the connection, and the gateway told at once."""
        c = moved.connection
        if c is None or not moved.changed:
            return
        data = {
            "connection_id": str(c.id),
            "name": c.name,
            "connection_type": c.connection_type,
            "is_active": c.is_active,
            "status": c.status,
            "aws_instance_id": moved.row.aws_instance_id,
            "spot_instance_id": str(moved.row.id),
        }
        scope = (c.owner, c.team)
        await self.registry.notify(c.id)  # out of rotation before anyone hears of it
        if c.status != moved.old_status:
            self._events.publish(
                "connection.status_changed", {**data, "old_status": moved.old_status}, scope
            )
        if c.is_active != moved.was_active:
            verb = "activated" if c.is_active else "deactivated"
            reason = {**data, "reason": REASONS[new], "message": moved.row.state_reason}
            self._events.publish(f"connection.{verb}", reason, scope)
            log.info(
                "spot instance %s: %s -> %s; connection %r %s (%s)",
                moved.row.aws_instance_id,
                old.value,
                new.value,
                c.name,
                verb,
                moved.row.state_reason,
            )

    # -- reading ------------------------------------------------------------------------------

    async def _row(self, ref: str, caller: Principal) -> SpotInstanceRow:
        row = None
        try:
            row = await self.store.get(uuid.UUID(ref))
        except ValueError:
            row = await self.store.by_instance(ref)
        if row is None or not caller.can_see(row.owner, row.team):
            shown = ref if len(ref) <= 80 else ref[:77] + "..."
            raise NotFound(f"no spot instance with id '{shown}'", field="id")
        return row

    async def view(self, row: SpotInstanceRow) -> SpotInstanceRead:
        read = SpotInstanceRead.model_validate(row)
        tokens = 0
        if row.connection_id is not None:
            try:
                read.connection = await self.registry.get(str(row.connection_id))
            except UmpError:
                read.connection = None
            tokens = await self.store.tokens_served(row.connection_id, row.launch_time)
        return read.with_cost(utcnow(), tokens)
