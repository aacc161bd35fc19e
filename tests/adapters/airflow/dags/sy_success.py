"""Two tasks that succeed: extract >> load. Triggered by the tests."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _load() -> str:
    return "loaded"


with DAG(
    dag_id="sy_success",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["switchyard", "etl"],
    default_args={"owner": "data-eng"},
) as dag:
    extract = BashOperator(task_id="extract", bash_command="echo extracting; sleep 1")
    load = PythonOperator(task_id="load", python_callable=_load)
    extract >> load
