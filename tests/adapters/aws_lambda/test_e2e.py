"""moto → Lambda adapter → ingest → REST API, plus a signed webhook merged with a polled run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.aws_lambda import LambdaAdapter
from emulators.lambda_estate import json_invocation, text_invocation
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config, parse_config
from gateway.runtime import Runtime, poll_once, source_statuses
from gateway.store.models import Run
from gateway.webhook_signing import HEADER, sign
from tests.adapters.aws_lambda.conftest import REGION, Estate
from tests.adapters.aws_lambda.fault_proxy import FaultProxy
from tests.adapters.aws_lambda.test_webhook import envelope, record

SECRET = "lambda-webhook-secret"
SOURCE = "lambda-e2e"
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STREAM = "2026/11/26/[$LATEST]e2e"


def rid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def make_config(endpoint: str, interval: str = "30s") -> Config:
    return parse_config(
        {
            "sources": [
                {
                    "name": SOURCE,
                    "kind": "lambda",
                    "interval": interval,
                    "options": {
                        "region": REGION,
                        "endpoint_url": endpoint,
                        "access_key_id_env": "SWY_TEST_AWS_KEY",
                        "secret_access_key_env": "SWY_TEST_AWS_SECRET",
                        "webhook_secret": "${SWY_TEST_WEBHOOK_SECRET}",
                        "max_attempts": 1,
                    },
                }
            ]
        },
        env={"SWY_TEST_WEBHOOK_SECRET": SECRET},
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def runs_by_key(client: TestClient, token: str) -> dict[str, dict[str, Any]]:
    r = client.get(
        "/api/v1/runs", params={"source": SOURCE}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    return {run["key"]: run for run in r.json()["data"]}


def test_polled_invocations_reach_the_api_and_a_webhook_result_merges_into_the_same_run(
    estate: Estate, engine: Engine
) -> None:
    arn = estate.function("orders", tags={"team": "data"})
    estate.rule("orders-hourly", "rate(1 hour)", arn)
    t = int(time.time() * 1000) - 120_000
    estate.logs(
        "/aws/lambda/orders",
        STREAM,
        text_invocation(rid(1), t, cold=True, traceparent=TP)
        + text_invocation(rid(2), t + 10_000, outcome="timeout"),
    )
    config = make_config(estate.url)
    adapter = LambdaAdapter(config.source(SOURCE).source_config())
    report = poll_once(engine, adapter)
    assert report.runs_created == 2

    token = create_token(engine, role="viewer", name="e2e")
    with TestClient(create_app(config, engine, adapters={SOURCE: adapter})) as client:
        runs = runs_by_key(client, token)
        assert runs[rid(1)]["state"] == "succeeded" and runs[rid(1)]["job"] == "orders"
        assert runs[rid(1)]["attributes"]["faas.coldstart"] is True
        assert runs[rid(2)]["state"] == "failed" and runs[rid(2)]["error"]["kind"] == "timeout"
        detail = client.get(
            f"/api/v1/runs/{runs[rid(1)]['id']}", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert {(r["namespace"], r["value"]) for r in detail["refs"]} >= {
            ("aws.request_id", rid(1)),
            ("w3c.traceparent", TP),
        }
        assert runs[rid(1)]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        jobs = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).json()
        (job,) = [j for j in jobs["data"] if j["key"] == "orders"]
        assert job["schedule"] == "0 * * * *"

        # An async invocation result for rid(2) arrives by webhook (destination →
        # EventBridge → API destination), and one for rid(3) before its logs are read.
        rec2 = record(
            success=False,
            error={"errorMessage": "2026-11-26T00:00:00.000Z x Task timed out after 3.00 seconds"},
        )
        rec2["requestContext"].update(requestId=rid(2), functionArn=f"{arn}:$LATEST")
        rec3 = record()
        rec3["requestContext"].update(requestId=rid(3), functionArn=arn)
        body = json.dumps([envelope(rec2, success=False), envelope(rec3)]).encode()
        r = client.post(
            f"/api/v1/sources/{SOURCE}/webhook",
            content=body,
            headers={
                HEADER: sign(SECRET, body, int(time.time())),
                "Content-Type": "application/json",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["runs_created"] == 1  # rid(2) merged into the polled run

        estate.logs(
            "/aws/lambda/orders", STREAM, json_invocation(rid(3), t + 20_000, outcome="success")
        )
        poll_once(engine, adapter, discover=False)
        runs = runs_by_key(client, token)
        assert set(runs) == {rid(1), rid(2), rid(3)}
        assert runs[rid(2)]["error"]["kind"] == "timeout"
        assert runs[rid(3)]["state"] == "succeeded"
        assert runs[rid(3)]["attributes"]["aws.lambda.duration_ms"] == 12.5


def test_throttling_shows_on_the_source_status_and_clears_when_aws_recovers(
    estate: Estate, engine: Engine
) -> None:
    estate.function("orders")
    estate.logs(
        "/aws/lambda/orders", STREAM, text_invocation(rid(7), int(time.time() * 1000) - 60_000)
    )
    with FaultProxy(estate.url) as proxy:
        proxy.faults["FilterLogEvents"] = -1
        config = make_config(proxy.url, interval="0.2s")
        adapter = LambdaAdapter(config.source(SOURCE).source_config())
        with Runtime(config, engine, adapters={SOURCE: adapter}, housekeeping=[]):
            assert wait_until(
                lambda: (
                    "ThrottlingException" in (source_statuses(engine, config)[0].last_error or "")
                )
            )
            status = source_statuses(engine, config)[0]
            assert status.consecutive_failures >= 1
            assert status.last_error and status.last_error.startswith(f"{SOURCE}: AWS throttled")
            proxy.faults["FilterLogEvents"] = 0
            assert wait_until(lambda: source_statuses(engine, config)[0].consecutive_failures == 0)
    with Session(engine) as session:
        keys = [r.key for r in session.exec(select(Run).where(Run.source == SOURCE))]
    assert keys == [rid(7)]  # nothing was lost while AWS throttled
