"""``/metrics``, ``/readyz`` and a connection's health summary."""

from __future__ import annotations

import httpx

from tests.conftest import Server
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-metrics-secret-key-0000000000"
HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


def test_metrics_count_gateway_calls_and_show_health(api: httpx.Client, server: Server) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        body = {
            "name": "metrics-probe",
            "connection_type": "openai",
            "base_url": f"{fake.url}/v1",
            "model_name": "fake-model",
            "api_key": KEY,
            "max_retries": 0,
        }
        created = api.post("/api/connections", json=body).json()
        for _ in range(3):
            ok = api.post(
                "/v1/chat/completions",
                json={"model": "metrics-probe", **HELLO},
                headers={"X-UMP-Source": "api"},
            )
            assert ok.status_code == 200
        fake.behaviour = Behaviour.server_error
        assert (
            api.post("/v1/chat/completions", json={"model": "metrics-probe", **HELLO}).status_code
            == 502
        )
        api.post(f"/api/connections/{created['id']}/test")  # fails: status error
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'ump_gateway_requests_total{connection="metrics-probe",connection_type="openai",'
        'outcome="success",source="api"} 3.0'
    ) in text
    assert 'ump_gateway_errors_total{connection="metrics-probe",kind="server_error"} 1.0' in text
    assert 'ump_gateway_tokens_total{connection="metrics-probe",direction="prompt"} 36.0' in text
    assert 'ump_gateway_request_duration_seconds_count{connection="metrics-probe"} 4.0' in text
    assert 'ump_connection_up{connection="metrics-probe",connection_type="openai"} 0.0' in text
    assert (
        'ump_connection_status{connection="metrics-probe",connection_type="openai",'
        'status="error"} 1.0'
    ) in text
    assert KEY not in text


def test_readyz_and_healthz(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_health_summary(api: httpx.Client) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        body = {
            "name": "watched",
            "connection_type": "openai",
            "base_url": f"{fake.url}/v1",
            "model_name": "fake-model",
            "api_key": KEY,
            "max_retries": 0,
        }
        created = api.post("/api/connections", json=body).json()
        url = f"/api/connections/{created['id']}"
        for _ in range(3):
            api.post(f"{url}/test")
        fake.behaviour = Behaviour.unauthorized
        api.post(f"{url}/test")
    health = api.get(f"{url}/health").json()
    assert health["status"] == "error"
    assert health["consecutive_failures"] == 1
    assert "check the API key" in health["last_error"]
    for window in ("last_hour", "last_day"):
        assert health[window]["checks"] == 4
        assert health[window]["success_rate"] == 0.75
        assert health[window]["latency_p50_ms"] is not None
    assert api.get(url).json()["health"] == health
