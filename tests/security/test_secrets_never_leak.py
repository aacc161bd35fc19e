"""Secrets from `${ENV}` never reach the logs, the API or the database.

A real `switchyard serve` (uvicorn at debug level) runs with sources whose secret
options come from the environment:

- an Airflow source whose password is a distinctive secret, pointed at a
  loopback server that refuses every login and — like a careless proxy —
  echoes the request it got (password included) in its error body, so the
  adapter's error path carries the secret in its exception text;
- a scripted source whose failure message quotes its secret option;
- a Lambda source with a webhook secret and AWS keys from the environment,
  pointed at a closed port;
- a cron source with a host token.

The test provokes errors (failing polls, bad and good webhook signatures
with unreadable payloads, wrong tokens, invalid batches, a dashboard login
with a wrong token), then searches every response body (sources, runs, jobs,
errors, OpenAPI, metrics, dashboard pages), the captured process output, the
`switchyard config check` output and the raw bytes of the database files for
each secret (plain and base64): none may appear.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.auth import create_token
from gateway.webhook_signing import HEADER, sign
from tests.dbs import migrated_engine
from tests.faults.gateway_process import (
    CLEAN_EXIT,
    SWITCHYARD,
    GatewayProcess,
    api_sources,
    gateway_env,
    wait_until,
)
from tests.faults.private_postgres import free_port

pytestmark = pytest.mark.slow

SECRETS = {
    "AIRFLOW_PASSWORD": "Sy-airflow-pw-7Qx9Zr2Lk",
    "SCRIPTED_SECRET": "Sy-scripted-Vb6Nc1Xe",
    "LAMBDA_WEBHOOK_SECRET": "Sy-whsec-Hj3Kd9QaTt",
    "CRON_HOST_TOKEN": "Sy-cron-token-P4mW8vTn",
    "AWS_SECRET_ACCESS_KEY": "Sy-aws-secret-Rr5Gg0Yy",
}


class EchoingRefuser(BaseHTTPRequestHandler):
    """Refuses every request with 401 and echoes what it received."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode(errors="replace") if length else ""
        body = json.dumps(
            {"detail": f"invalid credentials: {received} {self.headers.get('Authorization')}"}
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_airflow() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingRefuser)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def forms(secret: str) -> list[bytes]:
    """The byte strings that would betray `secret`."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(b"switchyard:" + raw)]


def leaks(blob: bytes) -> list[str]:
    return [name for name, s in SECRETS.items() if any(f in blob for f in forms(s))]


def test_secret_values_appear_in_no_log_response_or_database_file(
    tmp_path: Path, refusing_airflow: str
) -> None:
    db = tmp_path / "db" / "switchyard.db"
    url = f"sqlite:///{db}"
    engine = migrated_engine(url)
    admin = create_token(engine, role="admin", name="auditor")
    engine.dispose()
    fail_file = tmp_path / "scripted-down"
    fail_file.write_text(f"login refused for secret={SECRETS['SCRIPTED_SECRET']}")
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": url,
                "retention": "off",
                "sources": [
                    {
                        "name": "airflow-prod",
                        "kind": "airflow",
                        "interval": "0.3s",
                        "options": {
                            "url": refusing_airflow,
                            "api": "v2",
                            "username": "switchyard",
                            "password": "${AIRFLOW_PASSWORD}",
                        },
                    },
                    {
                        "name": "scripted-secret",
                        "kind": "scripted",
                        "interval": "0.3s",
                        "options": {"secret": "${SCRIPTED_SECRET}", "fail_file": str(fail_file)},
                    },
                    {
                        "name": "lambda-prod",
                        "kind": "lambda",
                        "interval": "0.5s",
                        "options": {
                            "region": "us-east-1",
                            "endpoint_url": f"http://127.0.0.1:{free_port()}",
                            "max_attempts": 1,
                            "timeout_s": 1,
                            "webhook_secret": "${LAMBDA_WEBHOOK_SECRET}",
                        },
                    },
                    {
                        "name": "cron-hosts",
                        "kind": "cron",
                        "options": {
                            "token": "${CRON_HOST_TOKEN}",
                            "control_file": str(tmp_path / "control.json"),
                        },
                    },
                ],
            }
        )
    )
    env = gateway_env(
        tmp_path,
        **SECRETS,
        AWS_ACCESS_KEY_ID="testing",
        SWITCHYARD_LOG_LEVEL="debug",
    )
    gateway = GatewayProcess(config, env, tmp_path / "serve.log")
    bodies: list[tuple[str, bytes]] = []

    def keep(label: str, response: httpx.Response) -> httpx.Response:
        bodies.append((label, response.content + str(response.headers).encode()))
        return response

    try:
        gateway.start()
        auth = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=gateway.base_url or "", timeout=10) as client:

            def every_source_failed() -> bool:
                view = api_sources(client, auth)
                return all(
                    view[s]["consecutive_failures"] >= 1
                    for s in ("airflow-prod", "scripted-secret", "lambda-prod")
                )

            assert wait_until(every_source_failed, 60), api_sources(client, auth)
            view = api_sources(client, auth)
            # The error path really ran with the secret in the exception text.
            assert "***" in str(view["scripted-secret"]["last_error"]), view["scripted-secret"]
            assert view["airflow-prod"]["last_error"], view["airflow-prod"]

            # Provoke more errors.
            bad = b'{"records": "not a list"}'
            now = int(time.time())
            keep(
                "webhook unsigned", client.post("/api/v1/sources/lambda-prod/webhook", content=bad)
            )
            keep(
                "webhook signed with a wrong key",
                client.post(
                    "/api/v1/sources/lambda-prod/webhook",
                    content=bad,
                    headers={HEADER: sign("wrong", bad, now)},
                ),
            )
            keep(
                "webhook signed, unreadable payload",
                client.post(
                    "/api/v1/sources/lambda-prod/webhook",
                    content=bad,
                    headers={HEADER: sign(SECRETS["LAMBDA_WEBHOOK_SECRET"], bad, now)},
                ),
            )
            keep(
                "cron report with a wrong token",
                client.post(
                    "/api/v1/cron/report",
                    json={"reports": []},
                    headers={"Authorization": "Bearer Sy-cron-token-wrong"},
                ),
            )
            keep(
                "invalid batch",
                client.post(
                    "/api/v1/events",
                    # A name no source uses: an admin may push there, so this is a 422.
                    json={"source": "scripts", "events": [{"key": "x", "state": "nope"}]},
                    headers=auth,
                ),
            )
            keep("anonymous", client.get("/api/v1/runs"))
            keep("bad token", client.get("/api/v1/runs", headers={"Authorization": "Bearer x"}))
            keep("dashboard login page", client.get("/login"))
            keep(
                "dashboard login with a secret as token",
                client.post(
                    "/login",
                    data={"token": SECRETS["CRON_HOST_TOKEN"], "csrf": "x", "next": "/"},
                ),
            )

            for path in (
                "/api/v1/sources",
                "/api/v1/runs",
                "/api/v1/jobs",
                "/api/v1/incidents",
                "/api/v1/openapi.json",
                "/api/v1/docs",
                "/metrics",
                "/healthz",
                "/readyz",
            ):
                r = keep(path, client.get(path, headers=auth))
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            with httpx.Client(base_url=gateway.base_url or "", timeout=10) as browser:
                page = browser.get("/login")
                csrf = browser.cookies.get("swy_login_csrf") or ""
                assert page.status_code == 200
                r = browser.post("/login", data={"token": admin, "csrf": csrf, "next": "/"})
                assert r.status_code in (200, 303), r.text[:300]
                for path in ("/", "/runs", "/jobs", "/incidents"):
                    r = keep(f"dashboard {path}", browser.get(path))
                    assert r.status_code == 200, (path, r.status_code)
        assert gateway.stop() in CLEAN_EXIT
    finally:
        gateway.kill()

    checked = subprocess.run(
        [SWITCHYARD, "config", "check", "--config", str(config)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr

    found = {label: leaks(body) for label, body in bodies}
    assert {k: v for k, v in found.items() if v} == {}
    output = (tmp_path / "serve.log").read_bytes()
    # The error paths were logged, with the secrets masked.
    assert b"poller airflow-prod" in output and b"***" in output
    assert leaks(output) == [], "a secret is in the gateway's output"
    assert leaks(checked.stdout + checked.stderr) == []
    db_files = sorted(db.parent.iterdir())
    assert db_files
    for f in db_files:
        assert leaks(f.read_bytes()) == [], f"a secret is in {f.name}"
