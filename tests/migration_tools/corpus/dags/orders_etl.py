"""Nightly orders ETL: extract from the shop DB, transform, load via a pod."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator

CURRENCY_RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}


def _to_eur(amount, currency):
    return round(amount * CURRENCY_RATES[currency], 2)


def transform_orders(src, dst):
    with open(src) as fh:
        orders = json.load(fh)
    for order in orders:
        order["amount_eur"] = _to_eur(order["amount"], order["currency"])
    with open(dst, "w") as fh:
        json.dump(orders, fh)
    print(f"transformed {len(orders)} orders")


with DAG(
    dag_id="orders_etl",
    schedule="0 2 * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["sales"],
    default_args={"owner": "data-eng", "retries": 2, "retry_delay": timedelta(minutes=5)},
) as dag:
    extract = BashOperator(
        task_id="extract",
        bash_command="psql \"$SHOP_DSN\" -c '\\copy orders to /data/orders.json' --date {{ ds }}",
        execution_timeout=timedelta(minutes=30),
    )
    transform = PythonOperator(
        task_id="transform",
        python_callable=transform_orders,
        op_kwargs={"src": "/data/orders.json", "dst": "/data/orders_eur.json"},
        sla=timedelta(hours=1),
    )
    load = KubernetesPodOperator(
        task_id="load",
        name="orders-loader",
        namespace="etl",
        image="registry.example.com/orders-loader:1.4.2",
        cmds=["python", "-m", "loader"],
        arguments=["--table", "orders_eur"],
        env_vars={"WAREHOUSE_URL": "postgresql://dwh/orders"},
        labels={"team": "data-eng"},
        get_logs=True,
    )
    extract >> transform >> load
