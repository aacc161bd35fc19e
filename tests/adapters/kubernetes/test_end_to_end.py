"""Emulated API server → official client → adapter → runtime poll → ingest → REST API."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from adapters.kubernetes import create, normalize
from gateway.api.app import create_app
from gateway.auth import create_token
from gateway.config import Config, SourceEntry
from gateway.contract import SourceConfig
from gateway.runtime.poller import poll_once
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
