"""Emulated API server → official client → adapter → runtime poll → ingest → REST API."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.kubernetes import create, normalize
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config, SourceEntry
from gateway.contract import SourceConfig, job_id_for
from gateway.inline_secrets import MASKED
from gateway.runtime.poller import poll_once
from gateway.store.models import Migration
from tests.fakes.kube_apiserver import Cluster, KubeApiServer

SOURCE = "k8s-e2e"


def test_oomkilled_job_pod_is_served_by_the_api_under_its_failed_job(
    engine: Engine, apiserver: KubeApiServer, cluster: Cluster, kubeconfig: Path
) -> None:
    options = {"kubeconfig": str(kubeconfig), "retry_backoff_s": 0.05}
    adapter = create(SourceConfig(name=SOURCE, kind="kubernetes", options=options))
    config = Config(
        sources=[SourceEntry(name=SOURCE, kind="kubernetes", interval=0.2, options=options)]
    )
    app = create_app(config, engine, adapters={SOURCE: adapter})
    token = create_token(engine, role="viewer", name="k8s-e2e")
    try:
        cron = cluster.create_cronjob("batch", "nightly", "0 2 * * *", time_zone="Europe/Berlin")
        poll_once(engine, adapter)
        job = cluster.create_job("batch", "nightly-29400000", cronjob=cron, backoff_limit=0)
        pod = cluster.create_pod("batch", job=job)
        cluster.schedule_pod(pod)
        cluster.run_pod(pod)
        cluster.end_pod(pod, 137, "OOMKilled")
        cluster.fail_job(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        job_key = normalize.job_key("batch", job["metadata"]["name"], job["metadata"]["uid"])
        pod_key = normalize.pod_key("batch", pod["metadata"]["name"], pod["metadata"]["uid"])
        headers = {"Authorization": f"Bearer {token}"}
        runs: dict[str, dict] = {}
        with TestClient(app) as http:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                poll_once(engine, adapter, discover=False)
                resp = http.get(
                    "/api/v1/runs", params={"source": SOURCE, "limit": 100}, headers=headers
                )
                assert resp.status_code == 200, resp.text
                runs = {r["key"]: r for r in resp.json()["data"]}
                if (
                    runs.get(job_key, {}).get("state") == "failed"
                    and runs.get(pod_key, {}).get("state") == "failed"
                ):
                    break
                time.sleep(0.1)
            jobs = http.get("/api/v1/jobs", params={"source": SOURCE}, headers=headers)
        run, attempt = runs[job_key], runs[pod_key]
        assert run["state"] == "failed" and run["error"]["kind"] == "BackoffLimitExceeded"
        assert run["job"] == "cronjob/batch/nightly"
        assert attempt["parent_id"] == run["id"] and attempt["trace_id"] == run["trace_id"]
        assert attempt["error"]["kind"] == "OOMKilled" and attempt["error"]["exit_code"] == 137
        assert jobs.status_code == 200, jobs.text
        assert "cronjob/batch/nightly" in jobs.text
    finally:
        adapter.close()


def test_a_cronjob_env_secret_is_masked_in_the_stored_spec_and_translated_to_a_kestra_secret(
    engine: Engine, cluster: Cluster, kubeconfig: Path
) -> None:
    secret = "Sy-k8s-env-pw-Qz81"
    options = {"kubeconfig": str(kubeconfig), "retry_backoff_s": 0.05}
    adapter = create(SourceConfig(name=SOURCE, kind="kubernetes", options=options))
    config = Config(
        sources=[SourceEntry(name=SOURCE, kind="kubernetes", interval=0.2, options=options)]
    )
    app = create_app(config, engine, adapters={SOURCE: adapter})
    headers = {"Authorization": f"Bearer {create_token(engine, role='operator', name='k8s')}"}
    manifest = {"env": [{"name": "DB_PASSWORD", "value": secret}]}  # as kubectl applied it
    try:
        cluster.create_cronjob(
            "batch",
            "nightly",
            "0 2 * * *",
            env={"DB_PASSWORD": secret},
            annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(manifest)},
        )
        poll_once(engine, adapter)
        job_id = job_id_for(SOURCE, "cronjob/batch/nightly")
        with TestClient(app) as http:
            job = http.get(f"/api/v1/jobs/{job_id}", headers=headers)
            translated = http.post(
                f"/api/v1/migrations/{job_id}/actions/translate", headers=headers
            )
            audit = http.get(f"/api/v1/migrations/{job_id}/audit", headers=headers)
        assert job.status_code == 200, job.text
        assert secret not in job.text
        spec = job.json()["spec"]["definition"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert spec["containers"][0]["env"] == [{"name": "DB_PASSWORD", "value": MASKED}]
        assert translated.status_code == 200, translated.text
        assert translated.json()["readiness"] == "full"
        [entry] = audit.json()["data"]
        assert entry["detail"]["secrets_to_create"] == ["NIGHTLY_DB_PASSWORD"]
        with Session(engine) as session:
            stored = session.get(Migration, job_id)
        assert stored is not None and stored.translated_yaml is not None
        assert "{{ secret('NIGHTLY_DB_PASSWORD') }}" in stored.translated_yaml.replace("''", "'")
        assert secret not in stored.translated_yaml
    finally:
        adapter.close()
