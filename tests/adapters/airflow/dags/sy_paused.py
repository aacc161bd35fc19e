"""A scheduled DAG that starts paused: discovered with its cron and timezone, never run."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="sy_paused",
    schedule="15 3 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Paris"),
    catchup=False,
    is_paused_upon_creation=True,
    tags=["switchyard", "nightly"],
    default_args={"owner": "finance"},
) as dag:
    BashOperator(task_id="report", bash_command="echo report", retries=3)
