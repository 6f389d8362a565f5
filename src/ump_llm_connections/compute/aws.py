"""EC2 through boto3: imported on first use only, every call in a thread, every failure turned
into the one error shape with a message that says what to do.

Credentials come from boto3's own chain (environment, profile, instance role) and are never
stored; ``AWS_ENDPOINT_URL`` points it at an emulator.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ump_llm_connections.domain.spot import MANAGED_TAG, Observed
from ump_llm_connections.errors import UmpError

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client
    from types_boto3_ec2.type_defs import InstanceTypeDef

__all__ = ["AwsError", "Ec2", "translate"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class AwsError(UmpError):
    """An AWS call failed: ``status`` and ``type`` say how (see ``translate``)."""

    def __init__(self, message: str, *, status: int, kind: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status
        self.type = kind


QUOTA_CODES = frozenset(
    {"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded"}
)
CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "InsufficientCapacity"})
PRICE_CODES = frozenset({"SpotMaxPriceTooLow"})
FIELD_CODES = {
    "InvalidAMIID": "image_id",
    "InvalidLaunchTemplateName": "launch_template",
    "InvalidLaunchTemplateId": "launch_template",
    "InvalidSubnetID": "subnet_id",
    "InvalidGroup": "security_group_ids",
    "InvalidKeyPair": "key_name",
    "InvalidInstanceType": "instance_type",
}


def translate(exc: Exception) -> UmpError:
    """One AWS failure as an ``AwsError`` (its message is AWS's, which names no credential)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, UmpError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsError(
            "no AWS credentials: give the server some through boto3's chain (AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role); they are never stored",
            status=503,
            kind="aws_credentials_missing",
        )
    if isinstance(exc, NoRegionError):
        return AwsError("no AWS region given", status=422, kind="validation_error", field="region")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(
            "the AWS EC2 endpoint cannot be reached: check the network (or AWS_ENDPOINT_URL)",
            status=503,
            kind="aws_unreachable",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))[:500]
        if code in CAPACITY_CODES:
            return AwsError(
                f"AWS has no spare capacity for this instance type here ({code}: {message}); try "
                "another instance type, availability zone (subnet_id) or region, or try later",
                status=503,
                kind="aws_insufficient_capacity",
            )
        if code in PRICE_CODES:
            return AwsError(
                f"max_price is below the current spot price ({message}); raise max_price or "
                "leave it out to pay up to the on-demand price",
                status=422,
                kind="aws_price_too_low",
                field="max_price",
            )
        if code in QUOTA_CODES:
            return AwsError(
                f"an AWS quota stops this launch ({code}: {message}); ask for a higher quota in "
                "Service Quotas (EC2 spot instance vCPUs for this family) or terminate instances",
                status=429,
                kind="aws_quota_exceeded",
            )
        if code in ("AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId"):
            return AwsError(
                f"AWS refused the server's credentials ({code}); give its role or user the EC2 "
                "permissions it needs (RunInstances, DescribeInstances, TerminateInstances, "
                "CreateTags, DescribeSpotPriceHistory)",
                status=403,
                kind="aws_forbidden",
            )
        for prefix, field in FIELD_CODES.items():
            if code.startswith(prefix):
                return AwsError(
                    f"{code}: {message}", status=422, kind="validation_error", field=field
                )
        if code in ("InvalidParameterValue", "InvalidParameterCombination", "MissingParameter"):
            return AwsError(f"{code}: {message}", status=422, kind="validation_error")
        return AwsError(f"AWS EC2 failed: {code}: {message}", status=502, kind="aws_error")
    log.warning("AWS call failed: %s", type(exc).__name__)
    return AwsError(f"AWS EC2 failed: {type(exc).__name__}", status=502, kind="aws_error")


class Ec2:
    """One EC2 client per region, made on first use (boto3 is imported then, not before)."""

    def __init__(self) -> None:
        self._clients: dict[str, EC2Client] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> EC2Client:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                import boto3
                from botocore.config import Config

                # botocore's debug lines hold whole requests (user data: a heartbeat token).
                for name in ("boto3", "botocore", "urllib3"):
                    quiet = logging.getLogger(name)
                    if quiet.getEffectiveLevel() < logging.INFO:
                        quiet.setLevel(logging.INFO)

                config = Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=5,
                    read_timeout=30,
                )
                client = boto3.session.Session().client("ec2", region_name=region, config=config)
                self._clients[region] = client
            return client

    async def _call(self, region: str, work: Callable[[EC2Client], T]) -> T:
        def run() -> T:
            try:
                return work(self._client(region))
            except Exception as exc:
                raise translate(exc) from None

        return await asyncio.to_thread(run)

    async def launch(self, region: str, params: Mapping[str, Any]) -> Observed:
        found = await self._call(region, lambda c: c.run_instances(**params))
        return _observed(region, found["Instances"][0])

    async def describe_managed(self, region: str) -> list[Observed]:
        """Every instance tagged ``ump:managed=true`` in the region, whatever its state."""

        def work(client: EC2Client) -> list[Observed]:
            pages = client.get_paginator("describe_instances").paginate(
                Filters=[{"Name": f"tag:{MANAGED_TAG}", "Values": ["true"]}]
            )
            return [
                _observed(region, instance)
                for page in pages
                for reservation in page.get("Reservations", [])
                for instance in reservation.get("Instances", [])
            ]

        return await self._call(region, work)

    async def terminate(self, region: str, instance_id: str) -> str:
        """Terminate an instance; its state now (``shutting-down`` or ``terminated``)."""
        found = await self._call(region, lambda c: c.terminate_instances(InstanceIds=[instance_id]))
        changes = found.get("TerminatingInstances", [])
        return str(changes[0]["CurrentState"]["Name"]) if changes else "shutting-down"

    async def spot_price(self, region: str, instance_type: str, zone: str | None) -> float | None:
        """The latest spot price per hour for the type (in the zone when known), or None."""

        def work(client: EC2Client) -> float | None:
            extra: dict[str, Any] = {"AvailabilityZone": zone} if zone else {}
            found = client.describe_spot_price_history(
                InstanceTypes=[instance_type],  # type: ignore[list-item]
                ProductDescriptions=["Linux/UNIX"],
                MaxResults=10,
                **extra,
            )
            prices = [float(p["SpotPrice"]) for p in found.get("SpotPriceHistory", [])]
            return prices[0] if prices else None

        try:
            return await self._call(region, work)
        except UmpError as exc:
            log.warning("no spot price for %s in %s: %s", instance_type, region, exc.message)
            return None


def _observed(region: str, instance: InstanceTypeDef) -> Observed:
    launch: datetime | None = instance.get("LaunchTime")
    reason = instance.get("StateReason", {}).get("Message") or instance.get("StateTransitionReason")
    return Observed(
        instance_id=instance["InstanceId"],
        region=region,
        state=str(instance.get("State", {}).get("Name", "pending")),
        instance_type=str(instance.get("InstanceType", "")),
        image_id=instance.get("ImageId"),
        public_ip=instance.get("PublicIpAddress"),
        private_ip=instance.get("PrivateIpAddress"),
        launch_time=launch,
        reason=reason or None,
        tags={
            t["Key"]: t["Value"] for t in instance.get("Tags", []) if "Key" in t and "Value" in t
        },
    )
