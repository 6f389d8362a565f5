"""Spot instances as the API sees them: launch, list, terminate, heartbeats and EventBridge
events. Every state change goes through ``SpotLifecycle`` (``lifecycle.py``)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from datetime import timedelta
from typing import Any

from ump_llm_connections.clock import utcnow
from ump_llm_connections.compute.lifecycle import PLACEHOLDER_URL, SpotLifecycle
from ump_llm_connections.domain import ApiFormat, ConnectionCreate, ConnectionType, SecretText
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal, ownership
from ump_llm_connections.domain.spot import (
    EC2_INTERRUPTION,
    MANAGED_TAG,
    MODEL_TAG,
    PORT_TAG,
    SPOT_ID_TAG,
    ComputeEvent,
    EventApplied,
    SpotInstanceCreate,
    SpotInstanceList,
    SpotInstanceRead,
    SpotState,
    state_after,
    user_data,
)
from ump_llm_connections.errors import Forbidden, Unauthorized
from ump_llm_connections.store.spot import ConnectionChange
from ump_llm_connections.store.tables import SpotInstanceRow
from ump_llm_connections.tokens import hash_token, new_token

__all__ = ["SpotService"]

log = logging.getLogger(__name__)

_DUMMY_HASH = hashlib.sha256(b"no such heartbeat token").hexdigest()


class SpotService(SpotLifecycle):
    """Launch, list, terminate; heartbeats and EventBridge events."""

    # -- the API ------------------------------------------------------------------------------

    async def launch(self, body: SpotInstanceCreate, caller: Principal) -> SpotInstanceRead:
        """Create the connection (inactive, ``testing``), launch the instance, record both."""
        owner, team = ownership(caller, None, None, set())
        spot_id = uuid.uuid4()
        connection = await self.registry.create(
            ConnectionCreate(
                name=body.name,
                connection_type=ConnectionType.aws_spot,
                api_format=ApiFormat.openai,
                base_url=PLACEHOLDER_URL,
                model_name=body.model_name,
                use_in_livekit=body.use_in_livekit,
                use_in_mcp=body.use_in_mcp,
                use_in_automation=body.use_in_automation,
                is_active=False,
                timeout=60.0,
                aws_region=body.region,
                owner=owner,
                team=team,
            ),
            caller=OPEN_ACCESS,  # its owner and team are the caller's (above)
        )
        _, token = new_token()
        self.launching.add(str(spot_id))
        try:
            try:
                found = await self.ec2.launch(body.region, self._run_params(spot_id, body, token))
            except BaseException:
                await self.registry.delete(str(connection.id))
                raise
            price = await self.ec2.spot_price(body.region, body.instance_type, None)
            now = utcnow()
            row = SpotInstanceRow(
                id=spot_id,
                aws_instance_id=found.instance_id,
                region=body.region,
                name=body.name,
                instance_type=body.instance_type,
                image_id=body.image_id,
                launch_template=body.launch_template,
                model_name=body.model_name,
                port=body.port,
                max_price=body.max_price,
                spot_price=price,
                state=state_after(SpotState.pending, found.state).value,
                state_reason="launched",
                public_ip=found.public_ip,
                private_ip=found.private_ip,
                launch_time=found.launch_time or now,
                connection_id=connection.id,
                heartbeat_token_hash=hash_token(token),
                lease_expires_at=now + timedelta(seconds=self.settings.lease_s),
                adopted=False,
                owner=owner,
                team=team,
                created_at=now,
                updated_at=now,
            )
            moved = await self.store.add(row, ConnectionChange(False, "testing"))
        finally:
            self.launching.discard(str(spot_id))
        await self._announce(moved, SpotState.pending, SpotState(row.state))
        log.info("launched spot instance %s (%s) for %r", row.aws_instance_id, row.region, row.name)
        return await self.view(moved.row)

    def _run_params(
        self, spot_id: uuid.UUID, body: SpotInstanceCreate, token: SecretText
    ) -> dict[str, Any]:
        public = self.settings.public_url
        heartbeat = f"{public}/api/compute/spot-instances/{spot_id}/heartbeat" if public else None
        script = user_data(
            spot_id=spot_id,
            model=body.model_name,
            port=body.port,
            heartbeat_url=heartbeat,
            token=token.reveal() if heartbeat else None,
            every_s=max(5, int(self.settings.lease_s / 3)),
        )
        tags = [
            *({"Key": k, "Value": v} for k, v in body.tags.items()),
            {"Key": "Name", "Value": body.name},
            {"Key": MANAGED_TAG, "Value": "true"},
            {"Key": SPOT_ID_TAG, "Value": str(spot_id)},
            {"Key": MODEL_TAG, "Value": body.model_name[:256]},
            {"Key": PORT_TAG, "Value": str(body.port)},
        ]
        spot: dict[str, Any] = {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        }
        if body.max_price is not None:
            spot["MaxPrice"] = f"{body.max_price:.6f}".rstrip("0").rstrip(".")
        params: dict[str, Any] = {
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": body.instance_type,
            "UserData": script,
            "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": spot},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        }
        if body.image_id:
            params["ImageId"] = body.image_id
        else:
            template = str(body.launch_template)
            key = "LaunchTemplateId" if template.startswith("lt-") else "LaunchTemplateName"
            params["LaunchTemplate"] = {key: template}
        if body.subnet_id:
            params["SubnetId"] = body.subnet_id
        if body.security_group_ids:
            params["SecurityGroupIds"] = body.security_group_ids
        if body.key_name:
            params["KeyName"] = body.key_name
        return params

    async def list(self, caller: Principal) -> SpotInstanceList:
        rows = await self.store.find(caller.scope)
        items = [await self.view(row) for row in rows]
        return SpotInstanceList(items=items, total=len(items))

    async def get(self, ref: str, caller: Principal) -> SpotInstanceRead:
        return await self.view(await self._row(ref, caller))

    async def terminate(self, ref: str, caller: Principal) -> SpotInstanceRead:
        """Terminate the instance and take its connection out of rotation."""
        row = await self._row(ref, caller)
        if not caller.can_change(row.owner):
            raise Forbidden("only the instance's owner or an admin can terminate it")
        if row.state != SpotState.terminated:
            ec2_state = await self.ec2.terminate(row.region, row.aws_instance_id)
            who = "an admin" if caller.is_admin else caller.name
            await self.move(row.id, ec2_state, f"terminated through the API by {who}")
        return await self.get(str(row.id), OPEN_ACCESS)

    async def heartbeat(self, ref: str, token: SecretText | None) -> SpotInstanceRead:
        """Renew an instance's lease; only its own token does (compared in constant time)."""
        try:
            spot_id: uuid.UUID | None = uuid.UUID(ref)
        except ValueError:
            spot_id = None
        row = await self.store.get(spot_id) if spot_id else None
        expected = row.heartbeat_token_hash if row and row.heartbeat_token_hash else _DUMMY_HASH
        presented = hash_token(token) if token else _DUMMY_HASH + "!"
        if not hmac.compare_digest(presented, expected) or row is None:
            raise Unauthorized("not this instance's heartbeat token", field="Authorization")
        if SpotState(row.state) in (SpotState.terminated, SpotState.interrupted):
            return await self.view(row)
        moved = await self.renew(row.id, heartbeat=True)
        return await self.view(moved.row if moved else row)

    async def apply_event(self, event: ComputeEvent) -> EventApplied:
        """An EventBridge event, applied at once; an instance not ours is left alone."""
        row = await self.store.by_instance(event.instance_id)
        if row is None:
            return EventApplied(applied=False)
        if event.detail_type == EC2_INTERRUPTION:
            action = str(event.detail.get("instance-action", "terminate"))[:40]
            moved = await self.interrupt(row.id, f"spot interruption warning ({action})")
        else:
            state = str(event.detail["state"])[:40]
            moved = await self.move(row.id, state, f"EventBridge: instance {state}")
            if state == "running" and moved is not None:
                moved = await self.renew(row.id)
        return EventApplied(applied=True, instance=await self.view(moved.row if moved else row))
