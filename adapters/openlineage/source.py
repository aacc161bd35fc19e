"""A push-only source for any OpenLineage producer (Spark, dbt, Flink, a custom job).

It serves the same ``POST /api/v1/lineage`` and ``/lineage/batch`` routes as an
Airflow source with ``openlineage: true``, using the same validation and
conversion (`adapters.airflow.openlineage`): events carrying Airflow facets
are keyed like Airflow runs, any other run by its ``runId`` with its parent
facet as parent. There is nothing to poll: `poll` returns no events and hands
the cursor back unchanged; `discover` returns no jobs.

Options: ``api_key`` (required: pushes send ``Authorization: Bearer <key>``), or
``allow_anonymous: true`` to take pushes without one (logged as a warning).
"""

from __future__ import annotations

from fastapi import APIRouter

from adapters.airflow import openlineage as ol
from gateway.contract import EventSink, JobSpec, PollResult, SourceConfig


class OpenLineageSource:
    kind = "openlineage"

    def __init__(self, config: SourceConfig) -> None:
        self.name = config.name
        api_key = config.options.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise ValueError(f"source {config.name!r}: options.api_key must be a string")
        self.api_key = api_key
        self.allow_anonymous = config.options.get("allow_anonymous") is True

    def discover(self) -> list[JobSpec]:
        return []

    def poll(self, cursor: str | None) -> PollResult:
        return PollResult(events=[], cursor=cursor)

    def routes(self, sink: EventSink) -> APIRouter:
        return ol.routes(
            self.name, sink, api_key=self.api_key, allow_anonymous=self.allow_anonymous
        )


def create(config: SourceConfig) -> OpenLineageSource:
    return OpenLineageSource(config)
