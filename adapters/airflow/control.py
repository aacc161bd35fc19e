"""Pause, resume and trigger a DAG: the cutover levers for an Airflow source.

Each call is one authenticated request; failures raise `SourceError` naming the
source and the DAG, and nothing is retried behind the caller's back (a trigger
must not run twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.airflow.client import AirflowClient
from gateway.contract import SourceError


def _checked(source: str, dag_id: str, action: str, call: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = call()
    except SourceError as exc:
        raise SourceError(
            source, f"{action} {dag_id}: {exc.message}", retryable=exc.retryable
        ) from exc
    return result


def pause(client: AirflowClient, source: str, dag_id: str) -> dict[str, Any]:
    return _checked(source, dag_id, "pause", lambda: client.set_paused(dag_id, True))


def resume(client: AirflowClient, source: str, dag_id: str) -> dict[str, Any]:
    return _checked(source, dag_id, "resume", lambda: client.set_paused(dag_id, False))


def trigger(
    client: AirflowClient,
    source: str,
    dag_id: str,
    *,
    run_id: str | None = None,
    conf: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a DAG run now (logical date left empty); returns Airflow's run payload."""
    return _checked(
        source, dag_id, "trigger", lambda: client.trigger(dag_id, run_id=run_id, conf=conf)
    )
