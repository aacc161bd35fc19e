"""Bill every region through the billing Lambda, notify, and kick off reconciliation."""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

with DAG(
    dag_id="invoice_fanout",
    schedule="15 4 * * 1-5",
    start_date=datetime(2025, 1, 1),
    catchup=True,
) as dag:
    prepare = BashOperator.partial(
        task_id="prepare_region",
        retries=1,
        retry_delay=timedelta(seconds=30),
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(minutes=10),
    ).expand(bash_command=["./prepare.sh eu", "./prepare.sh us", "./prepare.sh apac"])
    bill = LambdaInvokeFunctionOperator(
        task_id="bill",
        function_name="billing-run",
        qualifier="live",
        payload='{"mode": "daily", "dry_run": false}',
        region_name="eu-west-1",
        aws_conn_id="aws_billing",
    )
    notify = HttpOperator(
        task_id="notify.finance",
        http_conn_id="finance_api",
        endpoint="/v1/billing/complete",
        method="POST",
        data={"source": "airflow"},
        headers={"Content-Type": "application/json"},
    )
    reconcile = TriggerDagRunOperator(
        task_id="reconcile",
        trigger_dag_id="ledger_reconcile",
        wait_for_completion=True,
        conf={"run_type": "daily"},
    )
    prepare >> bill >> [notify, reconcile]
