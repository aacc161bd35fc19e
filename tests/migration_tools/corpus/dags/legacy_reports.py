"""Legacy reporting: Snowflake extract, a report build and a webhook."""

from datetime import datetime

from airflow import DAG
from airflow.providers.http.operators.http import SimpleHttpOperator
from airflow.providers.snowflake.operators.snowflake import SnowflakeOperator
from airflow.providers.standard.operators.bash import BashOperator

with DAG(dag_id="legacy_reports", schedule="30 6 * * *", start_date=datetime(2024, 1, 1)) as dag:
    extract = SnowflakeOperator(
        task_id="extract_sales",
        snowflake_conn_id="snowflake_dwh",
        sql="select * from sales where day = '{{ ds }}'",
    )
    build = BashOperator(
        task_id="build_report",
        bash_command="make report DAY={{ ds_nodash }} BUCKET={{ var.value.report_bucket }}",
        trigger_rule="all_done",
        pool="reports",
    )
    publish = SimpleHttpOperator(
        task_id="publish",
        endpoint="https://hooks.example.com/reports/ready",
        method="post",
    )
    extract >> build >> publish
