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
- a Lambda source whose keys come from `*_env` options (the option names a
  variable, the adapter reads its value), pointed at a careless AWS endpoint
  that quotes the request's `Authorization` (access key id) in its error;
- a cron source with a host token and a `ping_key`;
- a Kestra source with an API token, pointed at the echoing server, so a
  migration action that deploys to it fails with the token in its error;
- a Kubernetes source (the emulated API server) whose CronJob carries a
  database password in its pod template's env and in kubectl's
  last-applied annotation — a secret of the estate, not of the gateway.

The test provokes errors (failing polls, bad and good webhook signatures
with unreadable payloads, wrong tokens, invalid batches, a dashboard login
with a wrong token, a migration deploy that fails), pings checks by uuid and
by ping key, then searches every response body (sources, runs, jobs, the
CronJob's spec, migration audit, problem details, errors, OpenAPI, metrics,
dashboard pages), the captured process output (the access log included), the
`switchyard config check` output and the raw bytes of the database files for
each secret (plain and base64): none may appear. The access log shows a ping
uuid by its first four characters only. Alert text and delivery errors are
checked through the housekeeping task the runtime runs, with a real receiver.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from gateway.auth import create_token
from gateway.config import parse_config
from gateway.contract import ErrorInfo, RunEvent, State, job_id_for
from gateway.ingest import apply_batch
from gateway.runtime.housekeeping import default_tasks, run_tasks
from gateway.webhook_signing import HEADER, sign
from tests.dbs import migrated_engine
from tests.fakes.kube_apiserver import Cluster, KubeApiServer
from tests.faults.gateway_process import (
    CLEAN_EXIT,
    SWITCHYARD,
    GatewayProcess,
    api_sources,
    gateway_env,
    wait_until,
)
from tests.faults.private_postgres import free_port
from tests.gateway.test_alerts import Receiver

pytestmark = pytest.mark.slow

SECRETS = {
    "AIRFLOW_PASSWORD": "Sy-airflow-pw-7Qx9Zr2Lk",
    "SCRIPTED_SECRET": "Sy-scripted-Vb6Nc1Xe",
    "LAMBDA_WEBHOOK_SECRET": "Sy-whsec-Hj3Kd9QaTt",
    "CRON_HOST_TOKEN": "Sy-cron-token-P4mW8vTn",
    "AWS_SECRET_ACCESS_KEY": "Sy-aws-secret-Rr5Gg0Yy",
    "LAMBDA_KEY_VAR": "AKIASYNAMEDKEY7Hq2",
    "LAMBDA_SECRET_VAR": "Sy-named-secret-Lm9Wc4",
    "KESTRA_TOKEN": "Sy-kestra-token-Zu2Bn7Kd",
    "CRON_PING_KEY": "Sy-pingkey-Xc5Vb8Nm",
}
# Secrets of the watched estate, not of the gateway: they reach it as data.
ESTATE_SECRETS = {"K8S_DB_PASSWORD": "Sy-k8s-env-pw-Qe4Rt6Yu"}


class EchoingRefuser(BaseHTTPRequestHandler):
    """Refuses every request with 401 and echoes what it received."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode(errors="replace") if length else ""
        body = json.dumps(
            {"detail": f"invalid credentials: {self.headers.get('Authorization')} {received}"}
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_airflow() -> Iterator[str]:
    yield from _serving(EchoingRefuser)


class CarelessAws(BaseHTTPRequestHandler):
    """An AWS endpoint whose 500 error quotes the request's Authorization (the access key id)."""

    def _fail(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {"message": f"internal error for {self.headers.get('Authorization')}"}
        ).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", "ServiceException")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def careless_aws() -> Iterator[str]:
    yield from _serving(CarelessAws)


@pytest.fixture
def estate_cluster(tmp_path: Path) -> Iterator[Path]:
    """An emulated API server with one CronJob holding a password inline; its kubeconfig."""
    server = KubeApiServer(bookmark_interval_s=0.2).start()
    password = ESTATE_SECRETS["K8S_DB_PASSWORD"]
    applied = {"spec": {"env": [{"name": "DB_PASSWORD", "value": password}]}}
    Cluster(server.store).create_cronjob(
        "batch",
        "nightly",
        "0 2 * * *",
        env={"DB_PASSWORD": password, "REPORT_DSN": f"postgres://report:{password}@db/r"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)},
    )
    yield server.write_kubeconfig(tmp_path / "kubeconfig")
    server.stop()


def forms(secret: str) -> list[bytes]:
    """The byte strings that would betray `secret`."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(b"switchyard:" + raw)]


def leaks(blob: bytes) -> list[str]:
    every = {**SECRETS, **ESTATE_SECRETS}
    return [name for name, s in every.items() if any(f in blob for f in forms(s))]


def test_secret_values_appear_in_no_log_response_or_database_file(
    tmp_path: Path, refusing_airflow: str, careless_aws: str, estate_cluster: Path
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
                        "name": "lambda-named-keys",
                        "kind": "lambda",
                        "interval": "0.5s",
                        "options": {
                            "region": "us-east-1",
                            "endpoint_url": careless_aws,
                            "max_attempts": 1,
                            "timeout_s": 2,
                            "access_key_id_env": "LAMBDA_KEY_VAR",
                            "secret_access_key_env": "LAMBDA_SECRET_VAR",
                        },
                    },
                    {
                        "name": "cron-hosts",
                        "kind": "cron",
                        "options": {
                            "token": "${CRON_HOST_TOKEN}",
                            "ping_key": "${CRON_PING_KEY}",
                            "control_file": str(tmp_path / "control.json"),
                        },
                    },
                    {
                        "name": "kestra-prod",
                        "kind": "kestra",
                        "interval": "0.5s",
                        "options": {"url": refusing_airflow, "token": "${KESTRA_TOKEN}"},
                    },
                    {
                        "name": "k8s",
                        "kind": "kubernetes",
                        "interval": "0.3s",
                        "options": {"kubeconfig": str(estate_cluster), "retry_backoff_s": 0.05},
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
            failing = ("airflow-prod", "scripted-secret", "lambda-prod", "lambda-named-keys")

            def every_source_failed() -> bool:
                view = api_sources(client, auth)
                return all(view[s]["consecutive_failures"] >= 1 for s in failing)

            assert wait_until(every_source_failed, 60), api_sources(client, auth)
            view = api_sources(client, auth)
            # The error paths really ran with the secret in the exception text.
            for source in ("scripted-secret", "lambda-named-keys"):
                assert "***" in str(view[source]["last_error"]), view[source]
            assert view["airflow-prod"]["last_error"], view["airflow-prod"]

            # The CronJob's spec as discovery stored it and the API serves it.
            cronjob = job_id_for("k8s", "cronjob/batch/nightly")
            assert wait_until(
                lambda: client.get(f"/api/v1/jobs/{cronjob}", headers=auth).status_code == 200, 60
            ), api_sources(client, auth)
            spec = keep("cronjob spec", client.get(f"/api/v1/jobs/{cronjob}", headers=auth))
            assert "<masked-by-switchyard>" in spec.text
            # A migration: translated, then a deploy that the careless Kestra refuses
            # by quoting the token it was sent.
            actions = f"/api/v1/migrations/{cronjob}/actions"
            translated = keep("translate", client.post(f"{actions}/translate", headers=auth))
            assert translated.status_code == 200, translated.text
            deploy = keep("failed deploy", client.post(f"{actions}/deploy", headers=auth))
            assert deploy.status_code == 502, deploy.text
            assert "***" in deploy.json()["detail"], deploy.text
            audit = keep("audit", client.get(f"/api/v1/migrations/{cronjob}/audit", headers=auth))
            outcomes = [(a["action"], a["outcome"]) for a in audit.json()["data"]]
            assert outcomes == [("translate", "ok"), ("deploy", "compensated")], outcomes
            assert "***" in audit.json()["data"][1]["detail"]["error"]

            # Pings by check uuid and by ping key: the URL is the credential.
            check = str(uuid.uuid4())
            for path in (f"/ping/{check}/start", f"/ping/{check}"):
                keep(path, client.get(path))
            keep("slug ping", client.get(f"/ping/{SECRETS['CRON_PING_KEY']}/backup?create=1"))

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
                for path in ("/", "/runs", "/jobs", "/incidents", "/migrations"):
                    r = keep(f"dashboard {path}", browser.get(path))
                    assert r.status_code == 200, (path, r.status_code)
                r = keep("dashboard migration", browser.get(f"/migrations/{cronjob}"))
                assert r.status_code == 200 and "NIGHTLY_DB_PASSWORD" in r.text
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
    # The access log names a ping by the first characters of its uuid or key.
    assert f"/ping/{check[:4]}…/start".encode() in output
    assert f"/ping/{SECRETS['CRON_PING_KEY'][:4]}…/backup?create=1".encode() in output
    assert check.encode() not in output
    assert leaks(checked.stdout + checked.stderr) == []
    db_files = sorted(db.parent.iterdir())
    assert db_files
    for f in db_files:
        assert leaks(f.read_bytes()) == [], f"a secret is in {f.name}"


def test_alert_text_and_delivery_errors_carry_no_secret(sqlite_engine: Engine) -> None:
    """The alerts housekeeping task (as the runtime builds it) redacts what it sends and stores.

    A monitored job failed with an error that quotes a secret the gateway
    holds; the incident's notification reaches a real receiver with the
    secret masked. A second route's target fails with an error quoting its
    (secret) URL; the stored delivery error and the log are masked too.
    """
    secret, hook_secret = SECRETS["SCRIPTED_SECRET"], SECRETS["LAMBDA_WEBHOOK_SECRET"]
    receiver = Receiver()
    try:
        config = parse_config(
            {"alerts": {"default": ["${ALERT_HOOK}"]}}, env={"ALERT_HOOK": receiver.url}
        )
        config = config.model_copy(
            update={"secret_values": config.secret_values | {secret, hook_secret}}
        )
        now = datetime.now(UTC)
        apply_batch(
            sqlite_engine,
            "batch-jobs",
            [
                RunEvent(
                    source="batch-jobs",
                    key="nightly/1",
                    job="nightly",
                    state=State.failed,
                    started_at=now - timedelta(minutes=2),
                    ended_at=now - timedelta(minutes=1),
                    observed_at=now - timedelta(minutes=1),
                    error=ErrorInfo(kind="exit_code", message=f"login failed: pw={secret}"),
                )
            ],
        )
        counts = run_tasks(sqlite_engine, config, default_tasks(config))
        assert counts["alerts"] == 1, counts
        [sent] = receiver.bodies
        assert "login failed: pw=***" in sent["message"]
        assert leaks(json.dumps(sent).encode()) == []

        receiver.fail = True
        refused = parse_config({"alerts": {"default": [f"{receiver.url}?token={hook_secret}"]}})
        refused = refused.model_copy(update={"secret_values": config.secret_values})
        with sqlite_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alert_delivery"))
        run_tasks(sqlite_engine, refused, _failing_alert_tasks(refused))
        with sqlite_engine.connect() as conn:
            errors = [row[0] for row in conn.execute(sa.text("SELECT error FROM alert_delivery"))]
        assert errors and all("***" in e for e in errors), errors
        assert leaks("".join(errors).encode()) == []
    finally:
        receiver.close()


def _failing_alert_tasks(config: Any) -> Sequence[Any]:
    """The alerts task with a transport that fails naming the URL it was given."""
    from gateway.alerts import deliver_alerts
    from gateway.runtime.housekeeping import HousekeepingTask

    def notify(urls: Sequence[str], title: str, body: str) -> None:
        raise ConnectionError(f"cannot deliver to {', '.join(urls)}")

    return [
        HousekeepingTask(
            "alerts",
            lambda engine, now: deliver_alerts(
                engine, config.alerts, now=now, notify=notify, redact=config.redact
            ),
        )
    ]
