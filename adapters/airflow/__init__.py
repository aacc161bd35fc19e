"""Airflow source: poll REST (v2 or v1), discover DAGs, pause/resume/trigger, OpenLineage push."""

from adapters.airflow.adapter import AirflowAdapter, create

__all__ = ["AirflowAdapter", "create"]
