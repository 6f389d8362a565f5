"""AWS failures in the one error shape: missing credentials for real (a server with none), and
capacity, price and quota refusals from a tiny fake EC2 endpoint on 127.0.0.1 answering EC2's
XML errors; no connection is left behind. And the compute routes behind tokens: events need an
admin token, heartbeats only the instance's own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web

from tests.conftest import Server, make_database, start_server
from tests.test_access import create_token
from tests.test_webhooks import wait_for
from tests.upstreams.base import FakeUpstream

# instance type -> (HTTP status, EC2 error code), as EC2 answers RunInstances
REFUSALS = {
    "g5.nocapacity": (500, "InsufficientInstanceCapacity"),
    "g5.cheap": (400, "SpotMaxPriceTooLow"),
    "g5.vcpu": (400, "VcpuLimitExceeded"),
    "g5.limit": (400, "InstanceLimitExceeded"),
    "g5.spotcount": (400, "MaxSpotInstanceCountExceeded"),
    "g5.noami": (400, "InvalidAMIID.NotFound"),
}


class FakeEc2(FakeUpstream):
    """EC2's query API, refusing every RunInstances with the error its instance type names."""

    def __init__(self) -> None:
        super().__init__(api_key=None)
        self.actions: list[str] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/", self.query)

    async def query(self, request: web.Request) -> web.Response:
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
        self.actions.append(form.get("Action", ""))
        status, code = REFUSALS.get(form.get("InstanceType", ""), (400, "UnsupportedOperation"))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>refused by the fake ({code})</Message>"
            "</Error></Errors><RequestID>fake-request</RequestID></Response>"
        )
        return web.Response(status=status, text=body, content_type="text/xml")

    def error_response(self, status: int, message: str) -> web.Response:
        return web.Response(status=status, text=message)

    def authorized(self, request: web.Request) -> bool:
        return True


AWS_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "UMP_HEALTH_MONITOR": "false",
    "UMP_GATEWAY_REFRESH_S": "0.1",
    "UMP_TOKEN_REFRESH_S": "0.2",
}


@pytest.fixture(scope="module")
def fake_ec2() -> Iterator[FakeEc2]:
    with FakeEc2() as fake:
        yield fake


@dataclass
class Refusing:
    server: Server
    admin: str  # tokens are on: every route but the heartbeat needs one

    def client(self) -> httpx.Client:
        return self.server.client(headers={"Authorization": f"Bearer {self.admin}"})


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory, fake_ec2: FakeEc2) -> Iterator[Refusing]:
    folder = tmp_path_factory.mktemp("spot-errors")
    for db in make_database("sqlite", folder):
        server = start_server(
            db,
            folder / "data",
            AWS_ENDPOINT_URL=fake_ec2.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            **AWS_ENV,
        )
        try:
            admin = create_token(server, "--name", "root", "--role", "admin")
            with server.client(headers={"Authorization": f"Bearer {admin}"}) as client:
                wait_for(lambda: client.get("/api/compute/spot-instances").status_code == 200)
            yield Refusing(server, admin)
        finally:
            server.stop()


def body(instance_type: str, name: str) -> dict[str, object]:
    return {
        "name": name,
        "region": "eu-west-1",
        "instance_type": instance_type,
        "image_id": "ami-12c6146b",
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
        "max_price": 0.01,
    }


def test_capacity_price_and_quota_refusals_say_what_to_do(
    refusing: Refusing, fake_ec2: FakeEc2
) -> None:
    expected = {
        "g5.nocapacity": (503, "aws_insufficient_capacity", None, "another instance type"),
        "g5.cheap": (422, "aws_price_too_low", "max_price", "raise max_price"),
        "g5.vcpu": (429, "aws_quota_exceeded", None, "Service Quotas"),
        "g5.limit": (429, "aws_quota_exceeded", None, "Service Quotas"),
        "g5.spotcount": (429, "aws_quota_exceeded", None, "Service Quotas"),
        "g5.noami": (422, "validation_error", "image_id", "InvalidAMIID"),
    }
    with refusing.client() as client:
        for instance_type, (status, kind, field, advice) in expected.items():
            name = f"refused-{instance_type.split('.')[1]}"
            refused = client.post("/api/compute/spot-instances", json=body(instance_type, name))
            assert refused.status_code == status, refused.text
            error = refused.json()["error"]
            assert (error["type"], error["field"]) == (kind, field), refused.text
            assert advice in error["message"]
            assert "testing" not in error["message"]  # no credential in an error
        # Every launch failed: no connection was left behind, no instance recorded.
        assert client.get("/api/connections").json()["total"] == 0
        assert client.get("/api/compute/spot-instances").json()["total"] == 0
    assert set(fake_ec2.actions) == {"RunInstances"}
    assert '" 500' not in refusing.server.log()


def test_missing_credentials_is_a_503_that_says_how(tmp_path: Path, fake_ec2: FakeEc2) -> None:
    for db in make_database("sqlite", tmp_path):
        # No AWS credentials anywhere: no variables, no files, no instance metadata.
        server = start_server(db, tmp_path / "data", AWS_ENDPOINT_URL=fake_ec2.url, **AWS_ENV)
        try:
            with server.client() as client:
                refused = client.post(
                    "/api/compute/spot-instances", json=body("g5.xlarge", "no-creds")
                )
                assert refused.status_code == 503, refused.text
                error = refused.json()["error"]
                assert error["type"] == "aws_credentials_missing"
                assert "AWS_ACCESS_KEY_ID" in error["message"]
                assert client.get("/api/connections").json()["total"] == 0
        finally:
            server.stop()


def test_events_need_an_admin_token_and_heartbeats_their_own(refusing: Refusing) -> None:
    url = refusing.server.url
    event = {
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "detail": {"instance-id": "i-0123456789abcdef0", "instance-action": "terminate"},
    }
    with refusing.client() as client:
        member = client.post("/api/tokens", json={"name": "m", "role": "member", "team": "t"})
        assert member.status_code == 201, member.text
        applied = client.post("/api/compute/events", json=event)
        assert applied.status_code == 200, applied.text
        assert applied.json()["applied"] is False  # not an instance of ours: left alone
    anonymous = httpx.post(f"{url}/api/compute/events", json=event)
    assert anonymous.status_code == 401
    as_member = httpx.post(
        f"{url}/api/compute/events",
        json=event,
        headers={"Authorization": f"Bearer {member.json()['token']}"},
    )
    assert as_member.status_code == 403
    # The heartbeat passes the token check to its own (the route answers, not the middleware),
    # and the admin's token is not an instance's.
    beat = httpx.post(
        f"{url}/api/compute/spot-instances/{'0' * 32}/heartbeat",
        json={},
        headers={"Authorization": f"Bearer {refusing.admin}"},
    )
    assert beat.status_code == 401
    assert "heartbeat token" in beat.json()["error"]["message"]
