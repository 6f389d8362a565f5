"""AWS spot instances against moto in server mode on 127.0.0.1, on SQLite and PostgreSQL: launch,
the model loading then answering (a fake OpenAI upstream plays the instance's vLLM), activation
and its event, interruption with a pool failing over, termination (ours and boto3's), adoption
of a tagged instance, an untagged one left alone, heartbeats and lease expiry."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import BACKENDS, Server, free_port, launch_server, make_database
from tests.test_access import cli_token
from tests.test_webhooks import Receiver, webhook
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client

REGIONS = {"sqlite": "us-east-1", "postgresql": "us-west-2"}  # one moto, no shared instances
AMI = "ami-12c6146b"
LEASE_S = 3.0
HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


@dataclass
class Spot:
    server: Server
    client: httpx.Client
    region: str
    ec2: EC2Client
    vllm: FakeOpenAI  # every instance's model server (the endpoint template names its port)
    backup: FakeOpenAI
    receiver: Receiver
    backend: str


def wait_until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    _, port = moto.get_host_and_port()
    yield f"http://127.0.0.1:{port}"
    moto.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def spot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, moto_url: str
) -> Iterator[Spot]:
    backend = str(request.param)
    region = REGIONS[backend]
    folder = tmp_path_factory.mktemp(f"spot-{backend}")
    with (
        FakeOpenAI(api_key=None) as vllm,
        FakeOpenAI(api_key=None) as backup,
        Receiver() as receiver,
    ):
        for db in make_database(backend, folder):
            port = free_port()
            env = {
                "AWS_ENDPOINT_URL": moto_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": region,
                "AWS_EC2_METADATA_DISABLED": "true",
                "UMP_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "UMP_SPOT_REGIONS": region,  # adopts there before any launch of its own
                "UMP_SPOT_RECONCILE_S": "0.2",
                "UMP_SPOT_LEASE_S": str(LEASE_S),
                "UMP_SPOT_ENDPOINT_TEMPLATE": "http://127.0.0.1:{port}/v1",
                "UMP_GATEWAY_REFRESH_S": "0.1",
                "UMP_USAGE_FLUSH_S": "0.1",
                "UMP_HEALTH_MONITOR": "false",
            }
            server = launch_server(db, folder / "data", env, start_timeout_s=60.0, port=port)
            ec2 = boto3.client(
                "ec2",
                region_name=region,
                endpoint_url=moto_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            try:
                with server.client() as client:
                    webhook(
                        client,
                        f"{receiver.url}/hook",
                        ["connection.activated", "connection.deactivated"],
                    )
                    yield Spot(server, client, region, ec2, vllm, backup, receiver, backend)
            finally:
                server.stop()
            logged = server.log()
            assert "Traceback" not in logged, logged


@pytest.fixture
def api(spot: Spot) -> Iterator[httpx.Client]:
    """The spot server's client; the model answers, and the server logged no 500."""
    spot.vllm.behaviour = Behaviour.normal
    spot.vllm.script = []
    seen = len(spot.server.log())
    yield spot.client
    spot.vllm.behaviour = Behaviour.normal
    assert '" 500' not in spot.server.log()[seen:]


def launch(spot: Spot, name: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": f"{name}-{spot.backend}",
        "region": spot.region,
        "instance_type": "g5.xlarge",
        "image_id": AMI,
        "model_name": "fake-model",
        "port": spot.vllm.port,
        "max_price": 0.9,
        "use_in_livekit": True,
        **extra,
    }
    response = spot.client.post("/api/compute/spot-instances", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def instance(spot: Spot, spot_id: str) -> dict[str, Any]:
    response = spot.client.get(f"/api/compute/spot-instances/{spot_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def in_state(spot: Spot, spot_id: str, state: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (view := instance(spot, spot_id))["state"] == state and view
    )
    return found


def ready(spot: Spot, name: str) -> dict[str, Any]:
    return in_state(spot, launch(spot, name)["id"], "ready")


def hook_events(spot: Spot, kind: str, connection_id: str) -> list[dict[str, Any]]:
    found = []
    for hit in spot.receiver.at("/hook"):
        event = hit.body
        if event["type"] == kind and event["data"]["connection_id"] == connection_id:
            found.append(event["data"])
    return found


def test_launch_loads_then_activates_with_an_event(spot: Spot, api: httpx.Client) -> None:
    spot.vllm.behaviour = Behaviour.loading  # vLLM loads its weights: 503 for a while
    created = launch(spot, "llama")
    connection = created["connection"]
    assert created["state"] in ("pending", "starting")
    assert created["region"] == spot.region and created["port"] == spot.vllm.port
    assert connection["connection_type"] == "aws_spot"
    assert connection["api_format"] == "openai"
    assert connection["aws_instance_id"] == created["aws_instance_id"]
    assert connection["aws_region"] == spot.region
    assert (connection["is_active"], connection["status"]) == (False, "testing")
    assert connection["use_in_livekit"] is True

    loading = wait_until(
        lambda: (
            "loading" in ((view := instance(spot, created["id"]))["state_reason"] or "") and view
        )
    )
    assert loading["state"] == "starting"  # not an error: the model is on its way
    assert loading["connection"]["status"] == "testing"
    assert loading["connection"]["is_active"] is False
    assert loading["connection"]["base_url"] == f"http://127.0.0.1:{spot.vllm.port}/v1"

    spot.vllm.behaviour = Behaviour.normal
    done = in_state(spot, created["id"], "ready")
    assert (done["connection"]["is_active"], done["connection"]["status"]) == (True, "active")
    activated = wait_until(lambda: hook_events(spot, "connection.activated", connection["id"]))
    assert activated[0]["reason"] == "spot_ready"
    assert activated[0]["aws_instance_id"] == created["aws_instance_id"]

    # Tokens served, beside the hours at the recorded spot price.
    answer = api.post("/v1/chat/completions", json={"model": connection["name"], **HELLO})
    assert answer.status_code == 200, answer.text
    served = wait_until(lambda: (view := instance(spot, created["id"]))["tokens_served"] and view)
    assert served["tokens_served"] == 21  # the fake's 12 prompt + 9 completion tokens
    assert served["spot_price"] is not None and served["cost_so_far"] is not None
    assert served["cost_per_million_tokens"] == pytest.approx(
        served["cost_so_far"] / 21 * 1e6, rel=1e-3, abs=1e-3
    )
    listed = api.get("/api/compute/spot-instances").json()
    assert created["id"] in {item["id"] for item in listed["items"]}


def test_interruption_takes_it_out_of_a_pool_with_no_failed_request(
    spot: Spot, api: httpx.Client
) -> None:
    doomed = ready(spot, "doomed")
    spot_connection = doomed["connection"]
    backup = api.post(
        "/api/connections",
        json={
            "name": f"backup-{spot.backend}",
            "connection_type": "remote",
            "base_url": f"{spot.backup.url}/v1",
            "model_name": "fake-model",
            "max_retries": 0,
        },
    )
    assert backup.status_code == 201, backup.text
    pool_name = f"spot-pool-{spot.backend}"
    made = api.post(
        "/api/pools",
        json={
            "name": pool_name,
            "strategy": "priority",
            "members": [
                {"connection_id": spot_connection["id"], "priority": 1},
                {"connection_id": backup.json()["id"], "priority": 2},
            ],
        },
    )
    assert made.status_code == 201, made.text
    warning = {
        "version": "0",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "region": spot.region,
        "detail": {"instance-id": doomed["aws_instance_id"], "instance-action": "terminate"},
    }
    interrupted = threading.Event()

    def call(index: int) -> tuple[int, str | None, bool]:
        if index == 30:
            applied = httpx.post(f"{spot.server.url}/api/compute/events", json=warning)
            assert applied.status_code == 200, applied.text
            assert applied.json()["applied"] is True
            interrupted.set()
        after = interrupted.is_set()
        prompt = {"role": "user", "content": f"call {index} after={after}"}
        answer = httpx.post(
            f"{spot.server.url}/v1/chat/completions",
            json={"model": pool_name, "messages": [prompt]},
            timeout=10,
        )
        return answer.status_code, answer.headers.get("x-ump-connection"), after

    with ThreadPoolExecutor(6) as workers:
        results = list(workers.map(call, range(90)))
    assert {status for status, _, _ in results} == {200}
    assert any(served == spot_connection["name"] for _, served, after in results if not after)
    assert {served for _, served, after in results if after} == {backup.json()["name"]}
    # Not one call that started once the warning was in reached the instance (calls already
    # on their way finish there: it lives two more minutes).
    reached = [str(r.body) for r in spot.vllm.requests if r.path == "/v1/chat/completions"]
    assert any("after=False" in body for body in reached)
    assert not any("after=True" in body for body in reached)
    view = instance(spot, doomed["id"])
    assert view["state"] == "interrupted"
    assert view["connection"]["is_active"] is False
    assert "interruption" in view["connection"]["last_error"]
    gone = wait_until(lambda: hook_events(spot, "connection.deactivated", spot_connection["id"]))
    assert gone[0]["reason"] == "spot_interrupted"
    audited = api.get("/api/audit", params={"action": "spot.event"}).json()["items"]
    assert doomed["id"] in {a["target_id"] for a in audited}


def test_termination_through_the_api_and_by_boto3(spot: Spot, api: httpx.Client) -> None:
    ours = ready(spot, "ours")
    ended = api.delete(f"/api/compute/spot-instances/{ours['id']}")
    assert ended.status_code == 200, ended.text
    assert ended.json()["state"] in ("shutting-down", "terminated")
    assert ended.json()["connection"]["is_active"] is False
    assert "terminated" in ended.json()["connection"]["last_error"]
    described = spot.ec2.describe_instances(InstanceIds=[ours["aws_instance_id"]])
    assert described["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    final = in_state(spot, ours["id"], "terminated")
    assert final["ended_at"] is not None
    again = api.delete(f"/api/compute/spot-instances/{ours['id']}")
    assert again.status_code == 200 and again.json()["state"] == "terminated"
    audited = api.get(
        "/api/audit", params={"target_type": "spot_instance", "target_id": ours["id"]}
    ).json()["items"]
    assert [a["action"] for a in audited] == ["spot.terminate", "spot.terminate", "spot.launch"]

    theirs = ready(spot, "theirs")
    spot.ec2.terminate_instances(InstanceIds=[theirs["aws_instance_id"]])
    seen = in_state(spot, theirs["id"], "terminated")
    assert seen["connection"]["is_active"] is False
    assert seen["connection"]["status"] == "inactive"
    reasons = wait_until(
        lambda: hook_events(spot, "connection.deactivated", theirs["connection"]["id"])
    )
    assert reasons[0]["reason"] in ("instance_shutting_down", "instance_terminated")
    assert api.get("/api/compute/spot-instances/i-00000000").status_code == 404


def test_adopts_a_tagged_instance_and_leaves_untagged_ones_alone(
    spot: Spot, api: httpx.Client
) -> None:
    untagged = spot.ec2.run_instances(
        ImageId=AMI,
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "not-ours"}]}
        ],
    )["Instances"][0]["InstanceId"]
    name = f"adopted-{spot.backend}"
    tags = {"ump:managed": "true", "Name": name, "ump:model": "fake-model"}
    tags["ump:port"] = str(spot.vllm.port)
    tagged = spot.ec2.run_instances(
        ImageId=AMI,
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"][0]["InstanceId"]

    wait_until(lambda: api.get(f"/api/compute/spot-instances/{tagged}").status_code == 200)
    adopted = in_state(spot, tagged, "ready")  # found by its AWS instance id too
    assert adopted["adopted"] is True and adopted["name"] == name
    assert adopted["connection"]["name"] == name
    assert adopted["connection"]["is_active"] is True
    assert adopted["connection"]["model_name"] == "fake-model"

    assert api.get(f"/api/compute/spot-instances/{untagged}").status_code == 404
    linked = spot.server.db.query(
        f"SELECT count(*) FROM llm_connections WHERE aws_instance_id = '{untagged}'"
    )
    assert linked[0][0] == 0
    untouched = spot.ec2.describe_instances(InstanceIds=[untagged])["Reservations"][0]
    assert untouched["Instances"][0]["State"]["Name"] == "running"
    assert untouched["Instances"][0]["Tags"] == [{"Key": "Name", "Value": "not-ours"}]


def test_user_data_heartbeats_and_lease_expiry(spot: Spot, api: httpx.Client) -> None:
    live = ready(spot, "leased")
    raw = spot.ec2.describe_instance_attribute(
        InstanceId=live["aws_instance_id"], Attribute="userData"
    )["UserData"]["Value"]
    script = base64.b64decode(raw).decode()
    url = f"{spot.server.url}/api/compute/spot-instances/{live['id']}/heartbeat"
    assert "MODEL=fake-model" in script
    assert f"PORT={spot.vllm.port}" in script
    assert "vllm serve" in script
    assert f"HEARTBEAT_URL={url}" in script
    token = re.search(r"HEARTBEAT_TOKEN=(\S+)", script)
    assert token is not None
    secret = token.group(1)

    def beat(with_token: str | None, target: str = url) -> httpx.Response:
        headers = {"Authorization": f"Bearer {with_token}"} if with_token else {}
        return httpx.post(target, json={}, headers=headers)

    assert beat(None).status_code == 401
    assert beat(secret[:-2] + "xx").status_code == 401
    other = ready(spot, "other")
    assert beat(secret, url.replace(live["id"], other["id"])).status_code == 401
    assert beat(secret, url.replace(live["id"], str(uuid.uuid4()))).status_code == 401
    refused = beat("nope")
    assert refused.json()["error"]["field"] == "Authorization"
    assert beat(secret).status_code == 200
    assert instance(spot, live["id"])["last_heartbeat_at"] is not None

    # Only the token's hash is stored; the token is in no response and no log line.
    stored = spot.server.db.query(
        f"SELECT heartbeat_token_hash FROM llm_spot_instances WHERE aws_instance_id = "
        f"'{live['aws_instance_id']}'"
    )
    assert stored[0][0] == hashlib.sha256(secret.encode()).hexdigest()
    fragments = [secret[i : i + 12] for i in range(4, len(secret) - 12, 10)]
    if spot.backend == "sqlite":
        data = Path(spot.server.db.dsn).read_bytes()
        for wal in Path(spot.server.db.dsn).parent.glob("ump.db-*"):
            data += wal.read_bytes()
        assert not any(f.encode() in data for f in fragments)
    shown = api.get("/api/compute/spot-instances").text + spot.server.log()
    assert not any(f in shown for f in fragments)

    # Out of EC2's sight (untagged), the heartbeats alone hold the lease ...
    spot.ec2.delete_tags(Resources=[live["aws_instance_id"]], Tags=[{"Key": "ump:managed"}])
    until = time.monotonic() + LEASE_S + 1
    while time.monotonic() < until:
        assert beat(secret).status_code == 200
        time.sleep(0.4)
    held = instance(spot, live["id"])
    assert (held["state"], held["connection"]["is_active"]) == ("ready", True)
    # ... and once they stop, the lease lapses and the endpoint leaves rotation.
    lapsed = in_state(spot, live["id"], "expired")
    assert lapsed["connection"]["is_active"] is False
    assert "lease expired" in lapsed["connection"]["last_error"]
    heard = wait_until(
        lambda: hook_events(spot, "connection.deactivated", live["connection"]["id"])
    )
    assert heard[0]["reason"] == "lease_expired"
    # A heartbeat again: probed, then back in rotation.
    assert beat(secret).status_code == 200
    back = in_state(spot, live["id"], "ready")
    assert back["connection"]["is_active"] is True


def test_validation_names_the_field(spot: Spot, api: httpx.Client) -> None:
    base = {
        "name": f"invalid-{spot.backend}",
        "region": spot.region,
        "instance_type": "g5.xlarge",
        "image_id": AMI,
        "model_name": "fake-model",
    }
    for change, field in (
        ({"image_id": None}, "image_id"),
        ({"launch_template": "lt-0123"}, "image_id"),
        ({"region": "Mars"}, "region"),
        ({"port": 0}, "port"),
        ({"max_price": -1}, "max_price"),
        ({"tags": {"ump:managed": "false"}}, "tags"),
        ({"instance_type": "big"}, "instance_type"),
    ):
        refused = api.post("/api/compute/spot-instances", json={**base, **change})
        assert refused.status_code == 422, (change, refused.text)
        assert refused.json()["error"]["field"] == field, (change, refused.text)
    taken = launch(spot, "taken")
    clash = api.post("/api/compute/spot-instances", json={**base, "name": taken["name"]})
    assert clash.status_code == 409 and clash.json()["error"]["field"] == "name"
    event = api.post("/api/compute/events", json={"detail-type": "Something", "detail": {}})
    assert event.status_code == 422 and event.json()["error"]["field"] == "detail-type"
    unknown = api.post(
        "/api/compute/events",
        json={
            "detail-type": "EC2 Instance State-change Notification",
            "detail": {"instance-id": "i-0123456789abcdef0", "state": "stopped"},
        },
    )
    assert unknown.status_code == 200 and unknown.json() == {"applied": False, "instance": None}


def test_members_see_their_teams_instances_only(tmp_path: Path, moto_url: str) -> None:
    """With tokens on, a member's instance and its connection are theirs alone (like the
    connections a member makes); another member, of their team or not, finds neither."""
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "UMP_SPOT_RECONCILE_S": "3600",  # the API's scoping is under test, not the lifecycle
        "UMP_TOKEN_REFRESH_S": "0.2",
        "UMP_HEALTH_MONITOR": "false",
    }
    for db in make_database("sqlite", tmp_path):
        server = launch_server(db, tmp_path / "data", env, start_timeout_s=60.0)
        try:
            admin = cli_token(db, tmp_path / "data", "--name", "root", "--role", "admin")
            with server.client(headers={"Authorization": f"Bearer {admin}"}) as root:
                wait_until(lambda: root.get("/api/tokens").status_code == 200)
                tokens = {
                    name: root.post(
                        "/api/tokens", json={"name": name, "role": "member", "team": team}
                    ).json()["token"]
                    for name, team in (("alice", "a"), ("bob", "a"), ("carol", "b"))
                }
            members = {
                name: server.client(headers={"Authorization": f"Bearer {token}"})
                for name, token in tokens.items()
            }
            body = {
                "name": "alice-spot",
                "region": "eu-west-1",
                "instance_type": "g5.xlarge",
                "image_id": AMI,
                "model_name": "fake-model",
            }
            made = members["alice"].post("/api/compute/spot-instances", json=body)
            assert made.status_code == 201, made.text
            spot_id, connection_id = made.json()["id"], made.json()["connection"]["id"]
            path = f"/api/compute/spot-instances/{spot_id}"
            assert members["alice"].get("/api/compute/spot-instances").json()["total"] == 1
            for other in ("bob", "carol"):
                assert members[other].get(path).status_code == 404
                assert members[other].get("/api/compute/spot-instances").json()["total"] == 0
                assert members[other].delete(path).status_code == 404
                assert members[other].get(f"/api/connections/{connection_id}").status_code == 404
            with server.client(headers={"Authorization": f"Bearer {admin}"}) as root:
                assert root.get(path).json()["name"] == "alice-spot"
            events = {"detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}}
            assert members["alice"].post("/api/compute/events", json=events).status_code == 403
            assert members["alice"].delete(path).status_code == 200
            for client in members.values():
                client.close()
        finally:
            server.stop()
