"""A token's requests per minute hold across replicas: two server processes on one PostgreSQL
database share the count through Redis."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.conftest import make_database, start_server
from tests.test_access import KEY, cli_token, connection_body, wait_until
from tests.test_limits import REDIS_URL, need_redis
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.secrets import generate_key

RPM = 4


def test_two_replicas_share_a_tokens_rpm_through_redis(tmp_path: Path) -> None:
    need_redis()
    db = next(make_database("postgresql", tmp_path))
    prefix = f"test:tokens:{uuid.uuid4().hex}"
    token = cli_token(
        db, tmp_path / "one", "--name", "shared", "--role", "admin", "--rpm", str(RPM)
    )
    env = {
        "UMP_GATEWAY_REFRESH_S": "0.05",
        "UMP_HEALTH_MONITOR": "false",
        "UMP_REDIS_URL": REDIS_URL,
        "UMP_REDIS_PREFIX": prefix,
        "UMP_SECRET_KEY": generate_key(),  # replicas share the server key
    }
    one = start_server(db, tmp_path / "one", **env)
    two = start_server(db, tmp_path / "two", **env)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with (
            FakeOpenAI(api_key=KEY) as upstream,
            one.client(headers=headers) as a,
            two.client(headers=headers) as b,
        ):
            made = a.post("/api/connections", json=connection_body(upstream, "shared-rpm"))
            assert made.status_code == 201, made.text
            wait_until(lambda: b.get("/v1/models").json()["data"] != [], timeout=30)
            if time.time() % 60 > 45:  # start in a fresh minute: the count is per minute
                time.sleep(61 - time.time() % 60)
            body = {"model": "shared-rpm", "messages": [{"role": "user", "content": "hi"}]}
            statuses = [
                client.post("/v1/chat/completions", json=body).status_code
                for client in (a, b) * RPM
            ]
        assert statuses[:RPM] == [200] * RPM, statuses
        assert set(statuses[RPM:]) == {429}, statuses
    finally:
        one.stop()
        two.stop()
