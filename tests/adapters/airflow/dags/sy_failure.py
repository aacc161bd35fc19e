"""A task that fails on every try (retries=1), and a downstream that is upstream_failed."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _explode() -> None:
    raise ValueError("switchyard-marker: the orders file has 0 rows")


with DAG(
    dag_id="sy_failure",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["switchyard"],
    default_args={"owner": "payments", "retries": 1, "retry_delay": timedelta(seconds=2)},
) as dag:
    explode = PythonOperator(task_id="explode", python_callable=_explode)
    after = BashOperator(task_id="after", bash_command="echo never", retries=0)
    explode >> after
