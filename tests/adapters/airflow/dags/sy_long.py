"""A task that runs long enough to be observed running."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="sy_long",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["switchyard"],
) as dag:
    BashOperator(task_id="sleep", bash_command="sleep 45")
