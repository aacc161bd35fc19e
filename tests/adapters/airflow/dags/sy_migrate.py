"""A scheduled, unpaused DAG whose first interval is far away: the migration tests pause it.

Its start date lies in the future, so pausing and unpausing it never makes the
scheduler create a run; only runs triggered through the API ever exist.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="sy_migrate",
    schedule="45 4 * * *",
    start_date=pendulum.datetime(2099, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["switchyard", "migration"],
    default_args={"owner": "platform"},
) as dag:
    BashOperator(task_id="refresh", bash_command="echo refreshed")
