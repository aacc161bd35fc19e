"""Record the fast-test cassettes from a real Airflow (never from a fake).

Usage: python -m tests.adapters.airflow.record_cassettes URL USERNAME PASSWORD OUTDIR [v1|v2]

The Airflow must have run the DAGs in ./dags at least once (sy_success,
sy_failure, sy_mapped, sy_manual). Hosts are rewritten to
``http://airflow.test:8080`` and credentials are scrubbed before anything is
written, so replay needs no server and leaks no secret.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import vcr

from adapters.airflow import create
from gateway.contract import SourceConfig

REPLAY_URL = "http://airflow.test:8080"


def recorder(outdir: Path, real_url: str) -> vcr.VCR:
    def scrub_request(request: Any) -> Any:
        request.uri = request.uri.replace(real_url, REPLAY_URL)
        request.headers.pop("Authorization", None)
        request.headers.pop("authorization", None)
        if request.body and b"password" in (
            request.body if isinstance(request.body, bytes) else request.body.encode()
        ):
            request.body = json.dumps({"username": "admin", "password": "scrubbed"}).encode()
        return request

    def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body", {}).get("string")
        if isinstance(body, bytes) and b"access_token" in body:
            response["body"]["string"] = json.dumps({"access_token": "scrubbed-jwt"}).encode()
        return response

    return vcr.VCR(
        cassette_library_dir=str(outdir),
        record_mode="all",
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )


def main(url: str, username: str, password: str, outdir: str, api: str = "v2") -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rec = recorder(out, url.rstrip("/"))
    options = {"url": url, "username": username, "password": password, "api": api}
    adapter = create(SourceConfig(name="recorded", kind="airflow", options=options))
    with rec.use_cassette("poll_initial.yaml"):
        first = adapter.poll(None)
    with rec.use_cassette("poll_idle.yaml"):
        adapter.poll(first.cursor)
    with rec.use_cassette("discover.yaml"):
        adapter.discover()
    print(f"recorded {len(first.events)} events into {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
