"""Triggered by hand with a conf carrying a traceparent and a Kestra execution id."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _echo_conf(**context: object) -> None:
    print(context["dag_run"].conf)  # type: ignore[attr-defined]


with DAG(
    dag_id="sy_manual",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["switchyard"],
) as dag:
    PythonOperator(task_id="echo_conf", python_callable=_echo_conf)
