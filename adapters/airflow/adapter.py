"""The Airflow source: one configured Airflow, polled, discovered, controlled, pushed to.

Options (``sources[].options`` in ``switchyard.yaml``):

- ``url`` (required): the Airflow API server / webserver base URL.
- ``api``: ``v2`` (Airflow 3), ``v1`` (Airflow 2) or ``auto`` (default: probe).
- ``username`` / ``password`` (v2: for ``POST /auth/token``; v1: basic auth),
  or ``token`` (v2: a ready JWT, used until it is refused).
- ``overlap`` (default ``120s``): how far each poll re-reads behind its watermark.
- ``lookback``: how far back the first poll reads (default: everything).
- ``fetch_logs`` (default true), ``log_max_bytes`` (default 2 MiB).
- ``openlineage`` (default false): serve ``POST /api/v1/lineage`` and
  ``/lineage/batch`` for this source; ``openlineage_api_key`` is the Bearer key
  pushes must send (required, unless ``allow_anonymous: true`` takes anonymous
  pushes, logged as a warning); ``openlineage_namespace`` (default ``default``) is the namespace
  Airflow's provider uses, for recomputing its run ids.

Creating the adapter does no I/O; the client is built (and the API version
probed) on first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.airflow import control, normalize
from adapters.airflow import openlineage as ol
from adapters.airflow.client import PAGE_LIMIT, AirflowClient, Settings, create_client
from adapters.airflow.poller import Poller
from gateway.contract import ControlReceipt, EventSink, JobSpec, PollResult, SourceConfig
from gateway.states import StateMap, default_state_map

if TYPE_CHECKING:
    from fastapi import APIRouter

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def duration_s(source: str, name: str, value: Any, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"source {source!r}: options.{name} must be a duration like 120s or 5m")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class AirflowAdapter:
    kind = "airflow"

    def __init__(
        self,
        config: SourceConfig,
        *,
        client: AirflowClient | None = None,
        states: StateMap | None = None,
    ) -> None:
        options: Mapping[str, Any] = config.options
        self.name = config.name
        self.config = config
        self.settings = Settings.from_options(config.name, options)
        self.states = states or default_state_map()
        self.overlap_s = duration_s(config.name, "overlap", options.get("overlap"), 120.0) or 0.0
        self.lookback_s = duration_s(config.name, "lookback", options.get("lookback"), None)
        self.fetch_logs = bool(options.get("fetch_logs", True))
        self.openlineage_enabled = bool(options.get("openlineage", False))
        self.openlineage_api_key = options.get("openlineage_api_key")
        self.openlineage_anonymous = options.get("allow_anonymous") is True
        self.ol_namespace = str(options.get("openlineage_namespace", "default"))
        self._client = client
        self._poller: Poller | None = None

    @property
    def client(self) -> AirflowClient:
        if self._client is None:
            self._client = create_client(self.settings)
        return self._client

    @property
    def poller(self) -> Poller:
        if self._poller is None:
            self._poller = Poller(
                self.client,
                source=self.name,
                states=self.states,
                overlap_s=self.overlap_s,
                lookback_s=self.lookback_s,
                base_url=self.settings.base_url,
                ol_namespace=self.ol_namespace,
                fetch_logs=self.fetch_logs,
            )
        return self._poller

    # -- Adapter ---------------------------------------------------------------
    def poll(self, cursor: str | None) -> PollResult:
        return self.poller.poll(cursor)

    def discover(self) -> list[JobSpec]:
        """Every DAG with its tasks, edges and file: 1 + 3 requests per DAG (plus pages)."""
        dags: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.client.list_dags(offset=offset, limit=PAGE_LIMIT)
            dags.extend(page.items)
            offset += len(page.items)
            if len(page.items) < PAGE_LIMIT or (page.total is not None and offset >= page.total):
                break
        specs = []
        for dag in dags:
            dag_id = str(dag["dag_id"])
            details = {**dag, **self.client.dag_details(dag_id)}
            tasks = self.client.dag_tasks(dag_id)
            source_text = self.client.dag_source(details)
            specs.append(
                normalize.job_spec(
                    self.name,
                    details,
                    tasks,
                    source_text=source_text,
                    base_url=self.settings.base_url,
                )
            )
        return specs

    # -- ControlAdapter ------------------------------------------------------
    def pause(self, job_key: str) -> ControlReceipt:
        return control.pause(self.client, self.name, job_key)

    def resume(self, job_key: str, receipt: ControlReceipt | None = None) -> None:
        control.resume(self.client, self.name, job_key, receipt)

    def trigger(
        self, job_key: str, *, run_id: str | None = None, conf: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return control.trigger(self.client, self.name, job_key, run_id=run_id, conf=conf)

    # -- PushAdapter -----------------------------------------------------------
    def routes(self, sink: EventSink) -> APIRouter:
        """The OpenLineage routes when ``options.openlineage`` is on; else no routes."""
        if not self.openlineage_enabled:
            from fastapi import APIRouter

            return APIRouter()
        return ol.routes(
            self.name,
            sink,
            api_key=self.openlineage_api_key,
            allow_anonymous=self.openlineage_anonymous,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def create(config: SourceConfig) -> AirflowAdapter:
    return AirflowAdapter(config)
