"""Dynamic task mapping: one task expanded over three inputs."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

with DAG(
    dag_id="sy_mapped",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["switchyard"],
) as dag:

    @task
    def square(x: int) -> int:
        return x * x

    square.expand(x=[1, 2, 3])
